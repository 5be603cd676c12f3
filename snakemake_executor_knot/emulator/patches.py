"""Fidelity fixes for moto, applied inside the emulator's serve process only.

Batch jobs: containers get the endpoint, region, dummy job-role credentials and
AWS_BATCH_JOB_ARRAY_INDEX; logs go to the job definition's awslogs group; describe_jobs
carries exitCode and AWS's statusReason; failed attempts are retried as the job
definition's retryStrategy says (lifecycle, retries); array parents fail when a child
fails and pass terminate on to their children; SubmitJob enforces AWS's array-size and
override limits.
CloudFormation: a stack name is claimed atomically, an update replaces a role's inline
policies, and deleting a stack deletes its route table, job queue and compute environments
(moto keeps them, so the VPC could not go).
ECR: repository URIs and docker login point at the local registry, whose pushes appear in
ECR (see ``import_pushed_image``). S3: bucket policy conditions cannot be judged over plain
HTTP, so conditional statements are left out of moto's policy check; a ranged GET reads
only its range (speed only: moto otherwise copies the whole object for every range).

Each patch says what AWS does and why knot depends on it. The pure helpers hold the rules
and are tested on their own; the ``_patch_*`` functions only wire them into moto.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from base64 import b64encode
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from moto import settings as moto_settings
from moto.batch.exceptions import ClientException
from moto.batch.models import BatchBackend, ComputeEnvironment, Job, JobQueue, batch_backends
from moto.cloudformation.models import CloudFormationBackend
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ec2.models.route_tables import RouteTable
from moto.ecr.exceptions import ImageAlreadyExistsException
from moto.ecr.models import ECRBackend, Repository, ecr_backends
from moto.ecr.responses import ECRResponse
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.models import Role
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import FakeBucket, FakeKey
from moto.s3.responses import S3Response
from moto.utilities.docker_utilities import DockerModel

from . import lifecycle
from . import registry as local_registry
from .faults import Injector, error_body, request_operation

log = logging.getLogger("knot.emulator.patches")

# Stand-ins for the job role's credentials (see job_environment). Same values as the
# dummy credentials aws.clients uses for the emulator.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
CONTAINER_LABEL = "knot.emulator"
DEFAULT_LOG_GROUP = "/aws/batch/job"
MAX_ARRAY_SIZE = 10_000
MAX_OVERRIDES_CHARS = 8192


@dataclass(frozen=True)
class Fidelity:
    """What the patches need to know about the running emulator."""

    endpoint: str  # http://127.0.0.1:<port>: AWS_ENDPOINT_URL inside jobs
    registry: str  # 127.0.0.1:<registry port>: ECR's registry host
    label: str  # value of the knot.emulator label on containers this process starts
    state_dir: Path | None = None  # where `knot emulator faults` leaves its switches


_fidelity: Fidelity | None = None
_injector: Injector | None = None  # set by _patch_faults when the emulator has a state folder


def fidelity() -> Fidelity:
    if _fidelity is None:
        raise RuntimeError("emulator patches used before apply()")
    return _fidelity


def apply(config: Fidelity) -> None:
    """Patch moto (idempotent: a second call only updates the configuration)."""
    global _fidelity
    first = _fidelity is None
    _fidelity = config
    if first:
        _patch_submit_limits()
        _patch_job_environment()
        _patch_job_logs()
        _patch_job_outcome()
        _patch_array_parent()
        _patch_ecr()
        _patch_bucket_policy()
        patch_ranged_reads()
        _patch_stacks()
        _patch_faults()


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


def unconditional_policy(policy: str) -> str:
    """A bucket policy without its conditional statements. moto evaluates bucket policies
    but ignores conditions, so the TLS-only Deny (aws:SecureTransport=false) that knot's
    bucket carries would deny every request. On AWS knot always uses TLS and that Deny
    never applies; the emulator speaks plain HTTP and cannot judge conditions at all."""
    document = json.loads(policy)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    document["Statement"] = [st for st in statements if "Condition" not in st]
    return json.dumps(document)


def array_outcome(child_statuses: list[str | None]) -> str | None:
    """An array parent's final status once every child has finished: FAILED if any child
    failed (as AWS does), else SUCCEEDED. None while children are still active."""
    if not all(s in ("SUCCEEDED", "FAILED") for s in child_statuses):
        return None
    return "FAILED" if "FAILED" in child_statuses else "SUCCEEDED"


# --- Batch jobs ---------------------------------------------------------------------------


def _patch_submit_limits() -> None:
    original = BatchBackend.submit_job

    def submit_job(backend: BatchBackend, *args: Any, **kwargs: Any) -> Any:
        problem = submit_problem(kwargs.get("array_properties"), kwargs.get("container_overrides"))
        if problem:
            raise ClientException(problem)
        return original(backend, *args, **kwargs)

    BatchBackend.submit_job = submit_job


class _JobContainers:
    """docker's ``client.containers`` for one moto Job: ``run`` adds AWS's environment
    and the label by which the serve process removes leftovers on shutdown."""

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
        container = self._containers.run(**kwargs)
        lifecycle.strike_if_asked(_injector, job, container)
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


def _patch_job_environment() -> None:
    # moto guesses its own address for MOTO_HOST in containers (and shells out to curl
    # trying); with host networking it is simply 127.0.0.1.
    moto_settings.moto_server_host = lambda: "http://127.0.0.1"
    base_client = DockerModel.docker_client.fget
    Job.docker_client = property(lambda job: _JobDocker(base_client(job), job))

    original = Job._get_container_property

    def container_property(job: Job, name: str, default: Any) -> Any:
        if name != "environment":
            return original(job, name, default)
        return merged_environment(
            job.job_definition.container_properties.get("environment") or [],
            job.container_overrides.get("environment") or [],
            job.job_id,
        )

    Job._get_container_property = container_property


def _patch_job_logs() -> None:
    # moto writes every job's output to /aws/batch/job; AWS writes it to the log group of
    # the job definition's awslogs configuration, which is where knot reads a failed job's
    # log tail (it follows describe_jobs' container.logStreamName).
    original_init = Job.__init__

    def init(job: Job, *args: Any, **kwargs: Any) -> None:
        original_init(job, *args, **kwargs)
        job._log_group, job._stream_name = log_target(
            job.job_definition.container_properties, job.job_definition.name, job.job_id
        )

    Job.__init__ = init


def _patch_job_outcome() -> None:
    # AWS's DescribeJobs carries container.exitCode, and a statusReason for a non-zero
    # exit; knot reports both when a job fails. moto drops exitCode from the full
    # description (describe() replaces describe_short's container dict) and gives no
    # reason. The reason, each attempt's outcome and retries are lifecycle's.
    # AWS's container.resourceRequirements carry the overrides too; moto leaves them out.
    original_details = Job._container_details

    def container_details(job: Job) -> dict[str, Any]:
        details = original_details(job)
        if job.job_stopped and job.exit_code is not None:
            details["exitCode"] = job.exit_code
        # AWS also shows the sizes the job got, containerOverrides included; moto shows
        # the job definition's only.
        details["resourceRequirements"] = merged_requirements(
            job.job_definition.container_properties.get("resourceRequirements") or [],
            job.container_overrides.get("resourceRequirements") or [],
        )
        return details

    Job._container_details = container_details
    lifecycle.patch_attempts()


def _patch_array_parent() -> None:
    # moto marks an array parent SUCCEEDED when all children succeed and otherwise leaves
    # it SUBMITTED forever, so a workflow waiting on it would hang. AWS fails the parent
    # when all children are done and any failed. Terminating a parent on AWS terminates
    # its children too (knot's cancel terminates parents). AWS describes a child with its
    # arrayProperties.index; moto leaves it out.
    original_short = Job.describe_short
    original_describe = Job.describe
    original_terminate = Job.terminate

    def describe_short(job: Job) -> dict[str, Any]:
        _settle_array_parent(job)
        return original_short(job)

    def describe(job: Job) -> dict[str, Any]:
        result = original_describe(job)
        if "index" in job.array_properties:
            result["arrayProperties"] = {"index": job.array_properties["index"]}
        return result

    def terminate(job: Job, reason: str) -> None:
        original_terminate(job, reason)
        for child in job._child_jobs or []:
            child.terminate(reason)

    Job.describe_short = describe_short
    Job.describe = describe
    Job.terminate = terminate


def _settle_array_parent(job: Job) -> None:
    if not job._child_jobs or job.job_stopped:
        return
    outcome = array_outcome([child.status for child in job._child_jobs])
    if outcome is not None:
        # The parent's start is its first child's, as on AWS (moto leaves it at 1970).
        job.job_started_at = min(child.job_started_at for child in job._child_jobs)
        job._mark_stopped(success=outcome == "SUCCEEDED")


# --- ECR ----------------------------------------------------------------------------------


def authorization_data(registry_ids: list[str], registry: str) -> list[dict[str, Any]]:
    """GetAuthorizationToken's answer, pointing at the local registry. The token is the
    shape AWS uses (base64 of 'AWS:<password>'); the local registry accepts any login. The
    scheme stays https:// as on AWS: docker falls back to plain HTTP for 127.0.0.0/8."""
    expires = datetime.now(UTC) + timedelta(hours=12)
    return [
        {
            "authorizationToken": b64encode(f"AWS:{rid}-auth-token".encode()).decode(),
            "expiresAt": expires,
            "proxyEndpoint": f"https://{registry}",
        }
        for rid in registry_ids
    ]


def _patch_ecr() -> None:
    # On AWS the repository URI and the docker login endpoint name ECR's registry; in the
    # emulator they name the local registry, so `docker push <repositoryUri>:<tag>` works.
    original_repo_init = Repository.__init__
    original_create = ECRBackend.create_repository

    def repo_init(repo: Repository, *args: Any, **kwargs: Any) -> None:
        original_repo_init(repo, *args, **kwargs)
        repo.uri = f"{fidelity().registry}/{repo.name}"

    def create_repository(backend: ECRBackend, *args: Any, **kwargs: Any) -> Repository:
        repo = original_create(backend, *args, **kwargs)
        # Images survive emulator restarts in the registry's storage; a recreated
        # repository (a new stack after a restart) lists them again, as ECR would.
        _import_repository(backend, repo.name)
        return repo

    def get_authorization_token(response: ECRResponse) -> ActionResult:
        registry_ids = response._get_param("registryIds") or [response.current_account]
        return ActionResult(
            {"authorizationData": authorization_data(registry_ids, fidelity().registry)}
        )

    Repository.__init__ = repo_init
    ECRBackend.create_repository = create_repository
    ECRResponse.get_authorization_token = get_authorization_token


def import_pushed_image(repository: str, tag: str, digest: str) -> None:
    """Make a tag pushed to the local registry visible in ECR (every account and region
    whose ECR holds a repository of that name). Called from the registry's webhook."""
    backends = _backends_with(repository)
    if not backends:
        log.warning("push to %s:%s, which no ECR repository holds; ignored", repository, tag)
        return
    manifest = local_registry.fetch_manifest(fidelity().registry, repository, digest or tag)
    for backend in backends:
        _put_image(backend, repository, tag, manifest)


def _backends_with(repository: str) -> list[ECRBackend]:
    found = []
    for account in list(ecr_backends.values()):
        for backend in list(account.values()):
            if repository in backend.repositories:
                found.append(backend)
    return found


def _import_repository(backend: ECRBackend, repository: str) -> None:
    registry = fidelity().registry
    try:
        for tag in local_registry.list_tags(registry, repository):
            manifest = local_registry.fetch_manifest(registry, repository, tag)
            _put_image(backend, repository, tag, manifest)
    except (OSError, ValueError) as exc:  # URLError is an OSError
        log.warning("could not list %s in the local registry: %s", repository, exc)


def _put_image(backend: ECRBackend, repository: str, tag: str, manifest: tuple) -> None:
    body, media_type, digest = manifest
    try:
        backend.put_image(repository, body, tag, media_type or None, digest or None)
    except ImageAlreadyExistsException:
        # Either the same manifest under the same tag (nothing to do) or a changed tag in
        # an immutable repository, where AWS would have refused the push itself.
        log.info("ECR %s already has tag %s; left as is", repository, tag)
    except ServiceException as exc:
        log.warning("could not add %s:%s to ECR: %s", repository, tag, exc)


# --- S3 -----------------------------------------------------------------------------------


def _patch_bucket_policy() -> None:
    def get_permission(bucket: FakeBucket, action: str, resource: str) -> Any:
        if bucket.policy is None:
            return PermissionResult.NEUTRAL
        policy = IAMPolicy(unconditional_policy(bucket.policy.decode()))
        return policy.is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


class KeyWindow:
    """A key's bytes as moto's ranged GET uses them: it takes the whole value, asks its
    length and slices it. This reads only the slice from the key's buffer, so a multipart
    download of a large object does not copy the whole object once per part."""

    def __init__(self, key: FakeKey) -> None:
        self._key = key

    def __len__(self) -> int:  # also its truth value, as for bytes
        return self._key.size

    def __getitem__(self, part: slice) -> bytes:
        start, stop, step = part.indices(len(self))
        if step != 1:
            raise ValueError("only contiguous ranges are read")
        with self._key.lock:
            self._key._value_buffer.seek(start)
            return self._key._value_buffer.read(max(0, stop - start))


_ranged_get = threading.local()


def patch_ranged_reads() -> None:
    """While a plain GetObject with a Range header is answered, ``FakeKey.value`` is a
    window onto the buffer. Whatever moto returns unsliced is read in full before it
    leaves, so responses are byte for byte what moto sends. Idempotent."""
    if getattr(S3Response, "_knot_ranged_reads", False):
        return
    whole_value = FakeKey.value
    key_response = S3Response.key_response

    def value(key: FakeKey) -> Any:
        return KeyWindow(key) if getattr(_ranged_get, "on", False) else whole_value.fget(key)

    def ranged_key_response(response: S3Response, request: Any, full_url: str, headers: Any):
        plain_get = request.method == "GET" and "?" not in full_url
        if not (plain_get and request.headers.get("range")):
            return key_response(response, request, full_url, headers)
        _ranged_get.on = True
        try:
            status, out_headers, body = key_response(response, request, full_url, headers)
        finally:
            _ranged_get.on = False
        return status, out_headers, body[:] if isinstance(body, KeyWindow) else body

    FakeKey.value = property(value, whole_value.fset)  # type: ignore[method-assign]
    S3Response.key_response = ranged_key_response  # type: ignore[method-assign]
    S3Response._knot_ranged_reads = True  # type: ignore[attr-defined]


# --- CloudFormation -------------------------------------------------------------------------


def serialised(method: Any) -> Any:
    """``method`` one call at a time. AWS claims a stack name atomically; moto checks the
    name, then inserts the stack, so two first runs at once could each create one."""
    lock = threading.Lock()

    @functools.wraps(method)
    def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return one_at_a_time


def delete_route_table(route_table: Any, account_id: str, region_name: str) -> None:
    """moto's RouteTable has no delete, so its VPC, and the stack, could never be deleted.
    AWS deletes it once its associations are gone (moto raises until then, and
    CloudFormation tries again after the other resources)."""
    ec2_backends[account_id][region_name].delete_route_table(route_table.id)


def delete_batch_resource(resource: Any, account_id: str, region_name: str) -> None:
    """moto's stacks keep their job queues and compute environments (with the instances
    of a managed one, which hold the subnets). AWS deletes them with the stack."""
    backend = batch_backends[account_id][region_name]
    if isinstance(resource, ComputeEnvironment):
        backend.delete_compute_environment(resource.arn)
    else:
        backend.delete_job_queue(resource.arn)


def replace_inline_policies(role: Any, policies: list[dict]) -> None:
    """A role's inline policies become exactly the template's ``Policies``, as a stack
    update does on AWS. moto updates only the description, so a run that adds a bucket to
    knot's job role would leave the old policy in place."""
    wanted = {p["PolicyName"]: p["PolicyDocument"] for p in policies}
    for name in [n for n in role.policies if n not in wanted]:
        role.delete_policy(name)
    for name, document in wanted.items():
        role.put_policy(name, document if isinstance(document, str) else json.dumps(document))


def _patch_stacks() -> None:
    CloudFormationBackend.create_stack = serialised(CloudFormationBackend.create_stack)
    RouteTable.delete = delete_route_table
    ComputeEnvironment.delete = delete_batch_resource
    JobQueue.delete = delete_batch_resource
    original_update = Role.update_from_cloudformation_json.__func__

    def update_role(cls, **kwargs: Any) -> Any:  # moto passes every argument by name
        role = original_update(cls, **kwargs)
        properties = kwargs["cloudformation_json"].get("Properties") or {}
        replace_inline_policies(role, properties.get("Policies") or [])
        return role

    Role.update_from_cloudformation_json = classmethod(update_role)


# --- injected faults ----------------------------------------------------------------------


def _patch_faults() -> None:
    """Answer some requests with AWS's load errors when the tests ask for it (faults.py).
    Off unless a faults file says otherwise; it costs a stat a second."""
    global _injector
    folder = fidelity().state_dir
    if folder is None:
        return
    injector = _injector = Injector(folder)
    original = DomainDispatcherApplication.__call__

    def call(app: Any, environ: dict, start_response: Any) -> Any:
        operation = request_operation(environ)
        fault = injector.fault_for(operation)
        if fault is None:
            return original(app, environ, start_response)
        status, code = fault
        body, content_type = error_body(operation or "", status, code)
        headers = [("Content-Type", content_type), ("x-amzn-ErrorType", code)]
        start_response(f"{status} {code}", headers)
        return [body]

    DomainDispatcherApplication.__call__ = call
