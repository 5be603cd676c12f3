"""The workflow's ``envvars:`` and ``--envvars``, set in the job's environment.

The spec names a secret (``envvars.secret``, an ARN under the stack's prefix) and the
variables to set (``envvars.names``); the values are read from Secrets Manager with the
job role's credentials, after the spec's integrity check, and never printed: messages name
the variables only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .report import JobFailure

# Snakemake's own rule for envvar names (Workflow.register_envvars).
_NAME = re.compile(r"^\w+$", re.ASCII)


def wanted(spec: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """The secret and the variable names the spec asks for; None when it asks for none."""
    block = spec.get("envvars")
    if not block:
        return None
    secret, names = block.get("secret"), block.get("names")
    if not isinstance(secret, str) or not isinstance(names, list):
        raise JobFailure("the job spec's envvars are malformed (secret and names expected)")
    bad = [n for n in names if not isinstance(n, str) or not _NAME.match(n)]
    if bad:
        raise JobFailure(f"the job spec names invalid environment variables: {bad!r}")
    return secret, names


def chosen(values: object, names: list[str], secret: str) -> dict[str, str]:
    """The named values from the secret's content, checked to be text."""
    if not isinstance(values, dict):
        raise JobFailure(f"the envvars secret {secret} does not hold a JSON object")
    missing = [name for name in names if not isinstance(values.get(name), str)]
    if missing:
        raise JobFailure(f"the envvars secret {secret} lacks a text value for {missing!r}")
    return {name: values[name] for name in names}


def fetch(secret: str, client=None) -> object:
    client = client or boto3.session.Session().client(
        "secretsmanager", config=Config(retries={"mode": "standard"})
    )
    try:
        text = client.get_secret_value(SecretId=secret)["SecretString"]
    except (BotoCoreError, ClientError, KeyError) as exc:
        # The exception names the secret and the refusal, never the value.
        raise JobFailure(f"cannot read the envvars secret {secret}: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError:
        # from None: a parse error may quote the text, and the text is the secret.
        raise JobFailure(f"the envvars secret {secret} is not JSON") from None


def apply(
    spec: Mapping[str, Any], environ: MutableMapping[str, str] | None = None, client=None
) -> list[str]:
    """Set the spec's envvars in ``environ`` (os.environ); returns the names set."""
    request = wanted(spec)
    if request is None:
        return []
    secret, names = request
    values = chosen(fetch(secret, client), names, secret)
    target = os.environ if environ is None else environ
    target.update(values)
    return names
