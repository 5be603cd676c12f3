"""Fidelity fixes for moto's Batch jobs.

Containers get the endpoint, region, dummy job-role credentials and
AWS_BATCH_JOB_ARRAY_INDEX; logs go to the job definition's awslogs group; describe_jobs
carries exitCode and AWS's statusReason; failed attempts are retried as the job
definition's retryStrategy says (lifecycle, retries); array parents fail when a child
fails and pass terminate on to their children; SubmitJob enforces AWS's array-size and
override limits.

The pure helpers hold the rules and are tested on their own; the ``patch_*`` functions
only wire them into moto.
"""

from __future__ import annotations

import json
from typing import Any

from moto import settings as moto_settings
from moto.batch.exceptions import ClientException
from moto.batch.models import BatchBackend, Job
from moto.utilities.docker_utilities import DockerModel

from .. import lifecycle
from . import faults, instance
from .descriptors import getter, stored
from .fidelity import fidelity

# Stand-ins for the job role's credentials (see job_environment). Same values as the
# dummy credentials aws.clients uses for the emulator.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
CONTAINER_LABEL = "knot.emulator"
DEFAULT_LOG_GROUP = "/aws/batch/job"
MAX_ARRAY_SIZE = 10_000
MAX_OVERRIDES_CHARS = 8192


# --- pure rules -------------------------------------------------------------------------


def job_environment(
    env: dict[str, str],
    *,
    endpoint: str,
    region: str,
    job_id: str,
    queue: str,
    attempt: int = 1,
    array_index: int | None = None,
) -> dict[str, str]:
    """The environment of a Batch container: the job's own plus what AWS adds."""
    out = dict(env)
    # On AWS a job reaches AWS through its region's endpoints, with its job role's
    # credentials served by the ECS container credential endpoint. moto has no such
    # endpoint, so the container gets the emulator's endpoint and dummy keys instead. They
    # exist only in the running container, never in job definitions or overrides (knot's
    # "no credentials anywhere" rule), and the job's own values win, as on AWS.
    defaults = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **DUMMY_CREDENTIALS,
    }
    for name, value in defaults.items():
        out.setdefault(name, value)
    # AWS_BATCH_* are reserved and always set by Batch. moto sets only AWS_BATCH_JOB_ID;
    # knot's array children find their spec through AWS_BATCH_JOB_ARRAY_INDEX.
    out["AWS_BATCH_JOB_ID"] = job_id
    out["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
    out["AWS_BATCH_JQ_NAME"] = queue
    if array_index is not None:
        out["AWS_BATCH_JOB_ARRAY_INDEX"] = str(array_index)
    return out


def merged_environment(
    definition: list[dict[str, str]], override: list[dict[str, str]], job_id: str
) -> list[dict[str, str]]:
    """Job definition environment, then containerOverrides (which win), then
    AWS_BATCH_JOB_ID. Builds new lists: moto appended to the override list in place, and
    array children share that list, so concurrent children could read a sibling's id."""
    merged = {e["name"]: e["value"] for e in definition}
    merged.update({e["name"]: e["value"] for e in override})
    merged["AWS_BATCH_JOB_ID"] = job_id
    return [{"name": name, "value": value} for name, value in merged.items()]


def log_target(
    container_properties: dict | None, definition_name: str, job_id: str
) -> tuple[str, str]:
    """(log group, log stream) of a job, as AWS picks them from the job definition's
    awslogs logConfiguration: the stream is ``<prefix>/default/<task id>``, the prefix
    defaulting to the job definition name. The job id stands in for the ECS task id, with
    ':' (array children) made '-', since ':' is not allowed in stream names."""
    config = (container_properties or {}).get("logConfiguration") or {}
    options = config.get("options") or {} if config.get("logDriver") == "awslogs" else {}
    group = options.get("awslogs-group") or DEFAULT_LOG_GROUP
    prefix = options.get("awslogs-stream-prefix") or definition_name
    return group, f"{prefix}/default/{job_id.replace(':', '-')}"


def merged_requirements(definition: list[dict], overrides: list[dict]) -> list[dict]:
    """A job's resourceRequirements as DescribeJobs shows them: the job definition's, each
    type that SubmitJob's containerOverrides names replaced by the override."""
    by_type = {item["type"]: item for item in definition}
    by_type.update({item["type"]: item for item in overrides})
    return list(by_type.values())


def submit_problem(array_properties: dict | None, container_overrides: dict | None) -> str | None:
    """Why AWS would refuse this SubmitJob, for limits moto does not check (knot groups
    jobs into arrays and fills overrides, so it must stay within them); None if fine."""
    size = (array_properties or {}).get("size")
    if size is not None and not 2 <= size <= MAX_ARRAY_SIZE:
        return f"arrayProperties.size must be between 2 and {MAX_ARRAY_SIZE}, not {size}"
    chars = len(json.dumps(container_overrides or {}, separators=(",", ":")))
    if chars > MAX_OVERRIDES_CHARS:
        return f"containerOverrides has {chars} characters; AWS allows {MAX_OVERRIDES_CHARS}"
    return None


def array_outcome(child_statuses: list[str | None]) -> str | None:
    """An array parent's final status once every child has finished: FAILED if any child
    failed (as AWS does), else SUCCEEDED. None while children are still active."""
    if not all(s in ("SUCCEEDED", "FAILED") for s in child_statuses):
        return None
    return "FAILED" if "FAILED" in child_statuses else "SUCCEEDED"


# --- wiring into moto --------------------------------------------------------------------


def patch_submit_limits() -> None:
    original = BatchBackend.submit_job

    # Named ``self``, as in the method it replaces.
    def submit_job(self: BatchBackend, *args: Any, **kwargs: Any) -> Any:
        problem = submit_problem(kwargs.get("array_properties"), kwargs.get("container_overrides"))
        if problem:
            raise ClientException(problem)
        return original(self, *args, **kwargs)

    # Replacing moto's method is the point here, which mypy's method-assign forbids.
    BatchBackend.submit_job = submit_job  # type: ignore[method-assign]


class _JobContainers:
    """docker's ``client.containers`` for one moto Job: ``run`` adds AWS's environment,
    the job definition's user (as Batch does) and the label by which the serve process
    removes leftovers on shutdown."""

    def __init__(self, containers: Any, job: Job) -> None:
        self._containers = containers
        self._job = job

    def __getattr__(self, name: str) -> Any:
        return getattr(self._containers, name)

    def run(self, **kwargs: Any) -> Any:
        job = self._job
        kwargs["environment"] = job_environment(
            kwargs.get("environment") or {},
            endpoint=fidelity().endpoint,
            region=job.backend.region_name,
            job_id=job.job_id,
            queue=job.job_queue.name,
            attempt=max(len(job.attempts), 1),
            array_index=job.array_properties.get("index"),
        )
        kwargs["labels"] = {**(kwargs.get("labels") or {}), CONTAINER_LABEL: fidelity().label}
        mounts = list(kwargs.get("mounts") or [])
        if instance.uses_cache(mounts):  # the instance's input cache: one volume
            volume = instance.volume_name(fidelity().label)
            labels = {CONTAINER_LABEL: fidelity().label}
            instance.prepare(self._containers.client, kwargs["image"], volume, labels)
            kwargs["mounts"] = instance.instance_mounts(mounts, volume)
        # Batch runs the container as the definition's user; moto leaves it out.
        user = (job.job_definition.container_properties or {}).get("user")
        if user:
            kwargs["user"] = str(user)
        container = self._containers.run(**kwargs)
        lifecycle.strike_if_asked(faults.injector(), job, container)
        return container


class _JobDocker:
    def __init__(self, client: Any, job: Job) -> None:
        self._client = client
        self._job = job

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    @property
    def containers(self) -> _JobContainers:
        return _JobContainers(self._client.containers, self._job)


def patch_job_environment() -> None:
    # moto guesses its own address for MOTO_HOST in containers (and shells out to curl
    # trying); with host networking it is simply 127.0.0.1.
    # Replacing moto's setting is the point here; moto's is an lru_cache wrapper, which its
    # callers only call.
    moto_settings.moto_server_host = lambda: "http://127.0.0.1"  # type: ignore[assignment]
    base_client = getter(stored(DockerModel, "docker_client", property))
    # Replacing moto's property is the point here, which mypy's method-assign forbids; it
    # also takes Job.docker_client for the function its property wraps.
    Job.docker_client = property(  # type: ignore[method-assign, assignment]
        lambda job: _JobDocker(base_client(job), job)
    )

    original = Job._get_container_property

    # Named ``self``, as in the method it replaces.
    def container_property(self: Job, p: str, default: Any) -> Any:
        if p != "environment":
            return original(self, p, default)
        return merged_environment(
            (self.job_definition.container_properties or {}).get("environment") or [],
            self.container_overrides.get("environment") or [],
            self.job_id,
        )

    # Replacing moto's method is the point here, which mypy's method-assign forbids.
    Job._get_container_property = container_property  # type: ignore[method-assign]


def patch_job_logs() -> None:
    # moto writes every job's output to /aws/batch/job; AWS writes it to the log group of
    # the job definition's awslogs configuration, which is where knot reads a failed job's
    # log tail (it follows describe_jobs' container.logStreamName).
    original_init = Job.__init__

    # Named ``self``, as in the method it replaces.
    def init(self: Job, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._log_group, self._stream_name = log_target(
            self.job_definition.container_properties, self.job_definition.name, self.job_id
        )

    # Replacing moto's method is the point here, which mypy's method-assign forbids.
    Job.__init__ = init  # type: ignore[method-assign]


def patch_job_outcome() -> None:
    # AWS's DescribeJobs carries container.exitCode, and a statusReason for a non-zero
    # exit; knot reports both when a job fails. moto drops exitCode from the full
    # description (describe() replaces describe_short's container dict) and gives no
    # reason. The reason, each attempt's outcome and retries are lifecycle's.
    # AWS's container.resourceRequirements carry the overrides too; moto leaves them out.
    original_details = Job._container_details

    # Named ``self``, as in the method it replaces.
    def container_details(self: Job) -> dict[str, Any]:
        details = original_details(self)
        if self.job_stopped and self.exit_code is not None:
            details["exitCode"] = self.exit_code
        # AWS also shows the sizes the job got, containerOverrides included; moto shows
        # the job definition's only.
        details["resourceRequirements"] = merged_requirements(
            (self.job_definition.container_properties or {}).get("resourceRequirements") or [],
            self.container_overrides.get("resourceRequirements") or [],
        )
        return details

    # Replacing moto's method is the point here, which mypy's method-assign forbids.
    Job._container_details = container_details  # type: ignore[method-assign]
    lifecycle.patch_attempts()


def patch_array_parent() -> None:
    # moto marks an array parent SUCCEEDED when all children succeed and otherwise leaves
    # it SUBMITTED forever, so a workflow waiting on it would hang. AWS fails the parent
    # when all children are done and any failed. Terminating a parent on AWS terminates
    # its children too (knot's cancel terminates parents). AWS describes a child with its
    # arrayProperties.index; moto leaves it out.
    original_short = Job.describe_short
    original_describe = Job.describe
    original_terminate = Job.terminate

    # Named ``self``, as in the methods they replace.
    def describe_short(self: Job) -> dict[str, Any]:
        _settle_array_parent(self)
        return original_short(self)

    def describe(self: Job) -> dict[str, Any]:
        result = original_describe(self)
        if "index" in self.array_properties:
            result["arrayProperties"] = {"index": self.array_properties["index"]}
        return result

    def terminate(self: Job, reason: str) -> None:
        original_terminate(self, reason)
        for child in self._child_jobs or []:
            child.terminate(reason)

    # Replacing moto's methods is the point here, which mypy's method-assign forbids.
    Job.describe_short = describe_short  # type: ignore[method-assign]
    Job.describe = describe  # type: ignore[method-assign]
    Job.terminate = terminate  # type: ignore[method-assign]


def _settle_array_parent(job: Job) -> None:
    if not job._child_jobs or job.job_stopped:
        return
    outcome = array_outcome([child.status for child in job._child_jobs])
    if outcome is not None:
        # The parent's start is its first child's, as on AWS (moto leaves it at 1970).
        job.job_started_at = min(child.job_started_at for child in job._child_jobs)
        job._mark_stopped(success=outcome == "SUCCEEDED")
