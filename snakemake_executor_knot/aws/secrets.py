"""The values of a run's ``envvars:`` and ``--envvars``, kept in AWS Secrets Manager.

A job needs them in its environment, but a job definition, a SubmitJob request, a spec and
an image are all readable by far more people than the values should be, and end up in logs
and ``knot jobs``. So the values go to one secret per run, named under the stack
(``knot/<stack>/<run id>``) and tagged with it; specs carry only the secret's ARN and the
variable names, and the job role alone may read secrets under that prefix. The runtime
fetches the values inside the container (``runtime/envvars.py``).

A run deletes its secret at its end; one killed with SIGKILL cannot. The next start on the
stack deletes the secrets of runs that are certainly over (``delete_dead_run_secrets``):
each secret is tagged with its run's host and process id. On the same host (same boot and
PID namespace) the process is asked directly: gone means over; a reused pid only keeps a
secret longer. A run elsewhere cannot be asked, so its secret goes only after
MAX_RUN_AGE: Batch sets no longest job timeout, so no age proves a run over; a run on
another host that lasts longer than that would lose its secret for the jobs it starts
afterwards, which fail naming the secret.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import aws_error, error_code
from .template.common import STACK_TAG

_LIST_PAGE = 100
_SERVICE = "secretsmanager"
HOST_TAG = "knot:host"
PID_TAG = "knot:pid"
MAX_RUN_AGE = timedelta(days=30)
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_PID_NAMESPACE = Path("/proc/self/ns/pid")


def this_host() -> str:
    """Where this process's pid means something: the boot (one random id per boot, unlike
    host names, which collide) and the PID namespace (containers that share a host name
    have their own pids). 'unknown' where Linux's /proc does not say."""
    try:
        boot = _BOOT_ID.read_text().strip()
        namespace = os.stat(_PID_NAMESPACE).st_ino
    except OSError:
        return "unknown"
    return f"{socket.gethostname()[:100]}/{boot}/{namespace}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


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
    tags = [
        {"Key": STACK_TAG, "Value": stack},
        {"Key": HOST_TAG, "Value": this_host()},
        {"Key": PID_TAG, "Value": str(os.getpid())},
    ]
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
    """ARNs of the secrets knot made for ``stack``."""
    return [secret["ARN"] for secret in _stack_secret_entries(client, stack)]


def _stack_secret_entries(client, stack: str) -> list[dict]:
    """ListSecrets' entries of the secrets knot made for ``stack``: tagged with it and
    named under its prefix (ListSecrets' tag filters match keys and values separately, so
    both are checked here on each secret)."""
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
            found += [s for s in page.get("SecretList", []) if _ours(s, stack)]
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(
            exc, f"listing the envvars secrets of stack {stack}", service=_SERVICE
        ) from exc
    return found


def run_is_over(
    secret: dict,
    host: str,
    now: datetime,
    alive: Callable[[int], bool] = pid_alive,
) -> bool:
    """Whether the run that made ``secret`` (a ListSecrets entry: hostile input) is
    certainly over: its process is gone from this host, or it was made elsewhere more
    than MAX_RUN_AGE ago. Anything unreadable keeps the secret."""
    tags = {tag.get("Key"): tag.get("Value") for tag in secret.get("Tags", [])}
    if host != "unknown" and tags.get(HOST_TAG) == host:
        pid = _pid(tags.get(PID_TAG))
        return pid is not None and not alive(pid)
    created = secret.get("CreatedDate")
    return isinstance(created, datetime) and now - created > MAX_RUN_AGE


def _pid(tag: object) -> int | None:
    """A pid tag's value as a process id, or None (a digit to ``str.isdigit`` may be no
    digit to ``int``, and pid 0 would signal a whole process group)."""
    if not (isinstance(tag, str) and tag.isascii() and tag.isdigit() and len(tag) < 10):
        return None
    return int(tag) or None


def delete_dead_run_secrets(
    client, stack: str, alive: Callable[[int], bool] = pid_alive
) -> list[str]:
    """Delete the secrets of ``stack`` whose runs are certainly over (see the module's
    docstring); returns their names."""
    host, now = this_host(), datetime.now(UTC)
    deleted = []
    for secret in _stack_secret_entries(client, stack):
        if run_is_over(secret, host, now, alive):
            delete_secret(client, secret["ARN"])
            deleted.append(str(secret.get("Name", secret["ARN"])))
    return deleted


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
