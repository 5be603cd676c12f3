"""The workflow's config as one S3 object per run, which every spec references by its
SHA-256 instead of carrying a copy (see docs/internals.md, "The job spec").

A config of 43 KiB copied into each record of a 10,000-job array made a spec object of
0.39 GiB; now each record holds a reference of about 200 bytes and the config travels
once. The object is named by its content (``knot/specs/config/<sha256>.json``), so the
reference, and with it the adoption hash of a spec (``run/adoption.py``), is the same in
every run with the same config and differs as soon as the config does. It lies under the
specs' prefix: the job role may read it but never write it, and it expires with the specs
(``aws/template/iam.py``, ``aws/template/storage.py``). The runtime checks its SHA-256
before decoding it (``runtime/config.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import aws_error
from ..runtime.contract import SPEC_FOLDER
from .values import encode_value

CONFIG_PREFIX = f"knot/{SPEC_FOLDER}/config/"


@dataclass(frozen=True)
class ConfigObject:
    """The encoded config (``jobs/values.py``) as the bytes the object holds."""

    body: bytes
    sha256: str

    @property
    def key(self) -> str:
        return f"{CONFIG_PREFIX}{self.sha256}.json"

    def reference(self, bucket: str) -> dict:
        """What a spec carries as ``config_ref``."""
        return {"uri": f"s3://{bucket}/{self.key}", "sha256": self.sha256}


def rule_config(rule) -> object:
    """The config a rule's code sees: for a rule of a ``module:``, the module's own
    ``config:`` (Snakemake runs its rules with the module's globals), else the workflow's."""
    module_globals = getattr(rule, "module_globals", None)
    if isinstance(module_globals, dict) and "config" in module_globals:
        return module_globals["config"]
    return rule.workflow.config


def config_object(config: object, rule: str) -> ConfigObject | None:
    """The config's object, or None for an empty config (its jobs read {} without a GET).
    ``rule`` names the rule in the error for a value that cannot be sent."""
    if not config:
        return None
    encoded = encode_value(config, rule=rule, what="config")
    # Key order is data (iteration over config follows it), so the keys are not sorted.
    body = json.dumps(encoded, separators=(",", ":")).encode()
    return ConfigObject(body, hashlib.sha256(body).hexdigest())


def upload_config(s3, bucket: str, written: ConfigObject, rule: str) -> None:
    """Write the config object. Writing it again in a later run keeps it from expiring
    while jobs still read it; an equal key always means equal bytes."""
    try:
        s3.put_object(
            Bucket=bucket, Key=written.key, Body=written.body, ContentType="application/json"
        )
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(
            exc, "writing the workflow's config to S3", rule=rule, service="s3"
        ) from exc
