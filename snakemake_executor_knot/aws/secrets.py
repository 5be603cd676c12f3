"""The values of a run's ``envvars:`` and ``--envvars``, kept in AWS Secrets Manager.

A job needs them in its environment, but a job definition, a SubmitJob request, a spec and
an image are all readable by far more people than the values should be, and end up in logs
and ``knot jobs``. So the values go to one secret per run, named under the stack
(``knot/<stack>/<run id>``) and tagged with it; specs carry only the secret's ARN and the
variable names, and the job role alone may read secrets under that prefix. The runtime
fetches the values inside the container (``runtime/envvars.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import aws_error, error_code
from .template.common import STACK_TAG

_LIST_PAGE = 100
_SERVICE = "secretsmanager"


def secret_prefix(stack: str) -> str:
    """Every secret of a stack is named under this; the job role may read only these."""
    return f"knot/{stack}/"


def secret_name(stack: str, run_id: str) -> str:
    return f"{secret_prefix(stack)}{run_id}"


def envvar_reference(arn: str, names) -> dict:
    """What a job spec carries: where the values are, and which variables to set."""
    return {"secret": arn, "names": sorted(names)}


def store_envvars(client, stack: str, run_id: str, values: Mapping[str, str]) -> str:
    """Create the run's secret holding ``values``; returns its ARN. A secret left by an
    earlier attempt with the same name gets the new values."""
    name = secret_name(stack, run_id)
    body = json.dumps(dict(sorted(values.items())))
    try:
        return _create(client, name, body, stack)
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(
            exc, f"storing the workflow's envvars in secret {name}", service=_SERVICE
        ) from exc


def _create(client, name: str, body: str, stack: str) -> str:
    tags = [{"Key": STACK_TAG, "Value": stack}]
    try:
        return client.create_secret(Name=name, SecretString=body, Tags=tags)["ARN"]
    except ClientError as exc:
        if error_code(exc) != "ResourceExistsException":
            raise
    client.put_secret_value(SecretId=name, SecretString=body)
    return client.describe_secret(SecretId=name)["ARN"]


def read_envvars(client, secret: str) -> dict[str, str]:
    """The values stored under ``secret`` (a name or an ARN)."""
    try:
        return json.loads(client.get_secret_value(SecretId=secret)["SecretString"])
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"reading the envvars secret {secret}", service=_SERVICE) from exc


def delete_secret(client, secret: str) -> None:
    """Delete now, without the 7-day recovery window: the values came from the user's
    environment, which still holds them; a recoverable copy would only linger."""
    try:
        client.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise aws_error(exc, f"deleting the envvars secret {secret}", service=_SERVICE) from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"deleting the envvars secret {secret}", service=_SERVICE) from exc


def stack_secrets(client, stack: str) -> list[str]:
    """ARNs of the secrets knot made for ``stack``: tagged with it and named under its
    prefix (ListSecrets' tag filters match keys and values separately, so both are checked
    here on each secret)."""
    filters = [
        {"Key": "tag-key", "Values": [STACK_TAG]},
        {"Key": "name", "Values": [secret_prefix(stack)]},
    ]
    found = []
    try:
        pages = client.get_paginator("list_secrets").paginate(
            Filters=filters, PaginationConfig={"PageSize": _LIST_PAGE}
        )
        for page in pages:
            found += [s["ARN"] for s in page.get("SecretList", []) if _ours(s, stack)]
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(
            exc, f"listing the envvars secrets of stack {stack}", service=_SERVICE
        ) from exc
    return found


def _ours(secret: dict, stack: str) -> bool:
    tags = {tag.get("Key"): tag.get("Value") for tag in secret.get("Tags", [])}
    return tags.get(STACK_TAG) == stack and secret.get("Name", "").startswith(secret_prefix(stack))


def delete_stack_secrets(client, stack: str) -> list[str]:
    """Delete every envvars secret of ``stack`` (``knot infra down``); returns what went."""
    deleted = []
    for arn in stack_secrets(client, stack):
        delete_secret(client, arn)
        deleted.append(f"secret {arn}")
    return deleted
