"""``knot debug JOB``: run a Batch job's container again on this machine, with the job's
spec, to watch it (or look around in it with ``--shell``).

The container gets what Batch gave the job: its image, its user, and the environment that
points at its spec (``KNOT_SPEC_*``, the array index). In place of the job role it gets the
credentials of this command's AWS identity, handed over by name (``docker run -e NAME``),
so they appear in no command line. The job description comes from Batch and is treated as
hostile: only the spec variables are taken from it, each checked, and an image reference
that is not one is refused.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.clients import Clients, make_clients
from ..aws.logs import describe_one
from ..aws.status import split_child
from ..config.settings import KnotConfig
from ..errors import ConfigError, aws_error
from ..report.records import RUN_DIR, find_run, load_run
from ..runtime.contract import (
    ARRAY_INDEX_ENV,
    JOB_ID_ENV,
    KNOT_UID,
    SPEC_DIGEST_ENV,
    SPEC_RECORD_ENV,
    SPEC_URI_ENV,
)

# registry/repository:tag or @sha256:digest, as Docker reads them; no leading '-'.
_IMAGE = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,254}(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?")
_SPEC_VALUES = {
    SPEC_URI_ENV: re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,62}/[\x21-\x7e]{1,1024}"),
    SPEC_RECORD_ENV: re.compile(r"[0-9]{1,9}"),
    SPEC_DIGEST_ENV: re.compile(r"[0-9a-f]{64}"),
}
_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class DebugRun:
    """What ``docker run`` gets: the image, the user, the job's own variables (shown in the
    command) and the identity's (passed by name only)."""

    job_id: str
    image: str
    user: str
    job_env: dict[str, str]
    secret_env: dict[str, str]

    def argv(self, shell: bool, tty: bool) -> list[str]:
        argv = ["docker", "run", "--rm", "--network", "host", "--user", self.user]
        if shell:
            argv += ["-i", *(["-t"] if tty else []), "--entrypoint", "/bin/sh"]
        for name, value in self.job_env.items():
            argv += ["-e", f"{name}={value}"]
        for name in self.secret_env:
            argv += ["-e", name]
        return [*argv, self.image]


def register(commands) -> None:
    """Add ``knot debug JOB`` to the ``knot`` command."""
    parser = commands.add_parser(
        "debug",
        help="rerun a job's container on this machine, for inspection",
        description="Run a Batch job's container again on this machine: its image, user and "
        "spec, with this command's AWS identity in place of the job role. A failed job "
        "fails again in front of you; its outputs go where the job's would have gone.",
    )
    parser.add_argument(
        "job",
        metavar="JOB",
        help="Batch job id (an array child: <id>:<index>), or a Snakemake jobid of a run",
    )
    parser.add_argument(
        "--run",
        dest="debug_run",
        metavar="RUN",
        help="the run whose record maps a Snakemake jobid to its Batch job (default: latest)",
    )
    parser.add_argument(
        "--shell",
        action="store_true",
        help="start /bin/sh in the container instead of the job (default: run the job)",
    )
    parser.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the docker command instead of running it (default: run it)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, config: KnotConfig) -> int:
    clients = make_clients(config)
    job_id = batch_job_id(args.job, args.debug_run)
    plan = debug_run(clients, job_id, shell=args.shell)
    argv = plan.argv(args.shell, sys.stdin.isatty())
    if args.print_only:
        print(shlex.join(argv))
        return 0
    what = "a shell in" if args.shell else "the job in"
    print(f"knot: running {what} Batch job {job_id}'s container ({plan.image})", file=sys.stderr)
    try:
        return subprocess.run(argv, env={**os.environ, **plan.secret_env}).returncode
    except FileNotFoundError as exc:
        raise ConfigError(f"knot debug runs the job with the docker command: {exc}") from exc


def batch_job_id(job: str, run: str | None) -> str:
    """``job`` as a Batch job id: a Snakemake jobid (digits) is looked up in the run
    record (``run``, else the latest)."""
    if not job.isdigit():
        return job
    record = load_run(find_run(run, RUN_DIR))
    for entry in record.jobs:
        if entry.jobid == int(job) and entry.batch_id:
            return entry.batch_id
    raise ConfigError(
        f"run {record.run_id} has no Batch job for Snakemake jobid {job}: give a Batch job "
        "id (see 'knot jobs'), or name the run with --run."
    )


def debug_run(clients: Clients, job_id: str, shell: bool) -> DebugRun:
    """The container of Batch job ``job_id`` as ``docker run`` should start it."""
    description = describe_one(clients.batch, job_id, "debug", "each child runs one Snakemake job")
    if description.get("status") == "SUCCEEDED" and not shell:
        raise ConfigError(
            f"Job {job_id} succeeded: running it again would upload its outputs over the ones "
            "it made. Use --shell to look inside its container without running it."
        )
    container = description.get("container") or {}
    return DebugRun(
        job_id=job_id,
        image=_image(container.get("image") or _definition_image(clients, description), job_id),
        user=str(KNOT_UID),
        job_env=job_environment(container.get("environment"), job_id),
        secret_env=identity_environment(clients),
    )


def job_environment(environment: object, job_id: str) -> dict[str, str]:
    """The spec's variables from the job's environment, each checked; the job's id and
    array index as Batch sets them."""
    given = {}
    if isinstance(environment, list):
        given = {e.get("name"): e.get("value") for e in environment if isinstance(e, dict)}
    found = {}
    for name, pattern in _SPEC_VALUES.items():
        value = given.get(name)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ConfigError(
                f"Job {job_id} has no usable {name} in its environment: it was not "
                "submitted by knot, or its description is damaged."
            )
        found[name] = value
    found[JOB_ID_ENV] = job_id
    _, index = split_child(job_id)
    if index is not None:
        found[ARRAY_INDEX_ENV] = str(index)
    return found


def identity_environment(clients: Clients) -> dict[str, str]:
    """This command's region, endpoint and credentials, for the container's boto3."""
    found = {"AWS_DEFAULT_REGION": clients.region, "AWS_REGION": clients.region}
    endpoint = clients.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        found["AWS_ENDPOINT_URL"] = endpoint
    credentials = clients.session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        values = (frozen.access_key, frozen.secret_key, frozen.token)
        found.update({n: v for n, v in zip(_CREDENTIALS, values, strict=True) if v})
    return found


def _definition_image(clients: Clients, description: dict) -> object:
    """The image of the job's definition, where the description names none (moto)."""
    arn = description.get("jobDefinition")
    if not isinstance(arn, str):
        return None
    try:
        found = clients.batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"reading job definition {arn}", service="batch") from exc
    return ((found or [{}])[0].get("containerProperties") or {}).get("image")


def _image(image: object, job_id: str) -> str:
    if isinstance(image, str) and _IMAGE.fullmatch(image):
        return image
    raise ConfigError(f"Job {job_id} names no usable image ({str(image)[:80]!r}).")
