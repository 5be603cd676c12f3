"""Create or reuse knot's shared CloudFormation stack, and describe it (teardown.py deletes it).

One stack per account, region and stack name. The template's content hash is deployed with
it (the ``TemplateHash`` output, see ``template.assembly.stamp``), so a run whose settings
match does nothing but read the outputs.

Runs share the stack, so a run never takes from another what it needs: the job role's
buckets are the union of the deployed ones and this run's (a run that needs more updates
the stack, one that needs fewer leaves it alone). Other settings are recorded in the
``Settings`` output; a run asking for different ones updates the stack only while its queue
is idle, and otherwise stops with an error naming the setting and both values.

The read, the merge and the update happen under the stack lease (``lease.py``), so two
runs updating at once cannot drop each other's buckets or classes; before its first job a
run reads the stack again (``require_still_deployed``) in case an update that took no
lease did.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from ..config.classes import DEFAULT_CLASS, ComputeClass, class_from_record
from ..config.settings import KnotConfig, bucket_name_problem
from ..errors import AwsError, ConfigError, aws_error, error_code, error_message
from .clients import Clients
from .lease import LEASE_TIMING, LeaseTiming, StackLease, this_holder
from .network import check_network
from .policy import boundary_arn
from .template.assembly import (
    HASH_OUTPUT,
    OUTPUTS,
    SETTINGS_OUTPUT,
    build_template,
    recorded_settings,
    render,
    stamp,
)
from .template.common import STACK_TAG, Tags
from .template.compute import class_queue_output, on_demand_queue_output
from .template.iam import extra_buckets

CAPABILITIES = ["CAPABILITY_IAM"]
WAIT_TIMEOUT = 45 * 60.0
POLL_SECONDS = 10.0
# Bounds the create/update loop; conflicting settings stop it with an error first.
MAX_ROUNDS = 5  # one of them re-reads the stack under the lease
MAX_TEMPLATE_BYTES = 51_200  # CreateStack/UpdateStack's limit on TemplateBody
# The flag behind each recorded setting, for error messages.
SETTING_FLAGS = {
    "instance_types": "--knot-instance-types",
    "min_vcpus": "--knot-min-vcpus",
    "max_vcpus": "--knot-max-vcpus",
    "spot": "spot instances (--knot-on-demand turns them off)",
    "spot_bid_percentage": "--knot-spot-bid-percentage",
    "ami": "--knot-ami",
    "root_volume_gb": "--knot-root-volume-gb",
    "tags": "--knot-tags",
    "files_expiry_days": "--knot-files-expiry-days",
    "subnets": "--knot-subnets",
    "security_groups": "--knot-security-groups",
}
ACTIVE_JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
USABLE_STATES = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}
_NO_UPDATES = "No updates are to be performed"
_CASCADE = ("Resource creation cancelled", "Resource update cancelled")
_BotoErrors = (BotoCoreError, ClientError)


@dataclass(frozen=True)
class Infra:
    """What the rest of knot needs to know about the deployed stack."""

    stack_name: str
    region: str
    bucket: str
    repository_name: str
    repository_uri: str
    job_queue_arn: str
    log_group: str
    job_role_arn: str
    # Compute class -> its job queue's ARN; ``default`` is ``job_queue_arn``.
    queues: dict[str, str] = field(default_factory=dict)
    # Spot class -> its on-demand-only queue's ARN (a stack made before them has none).
    on_demand_queues: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.queues.setdefault(DEFAULT_CLASS, self.job_queue_arn)

    def queue_for(self, name: str) -> str:
        """The job queue of a compute class; the classes a run defines are always in the
        stack it made sure of (``ensure_infra``), so a missing one is a stack changed
        under the run."""
        if name not in self.queues:
            raise AwsError(
                f"knot's stack '{self.stack_name}' has no job queue for compute class "
                f"'{name}'; another run changed it. Run the workflow again."
            )
        return self.queues[name]

    def on_demand_queue_for(self, name: str) -> str:
        """The queue that runs a class's jobs on demand: its on-demand-only queue, or
        its own for a class without spot."""
        return self.on_demand_queues.get(name) or self.queue_for(name)


def _in_progress(status: str) -> bool:
    # moto shows CREATE_PENDING for a moment, between accepting a stack and creating it.
    return status.endswith(("_IN_PROGRESS", "_PENDING"))


def _outputs(stack: dict) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def deployed_hash(stack: dict) -> str | None:
    return _outputs(stack).get(HASH_OUTPUT)


def infra_from_stack(stack: dict, region: str) -> Infra | None:
    """The Infra from a stack's outputs, or None while any output is missing."""
    out = _outputs(stack)
    if not all(out.get(key) for key in OUTPUTS):
        return None
    fields = {name: out[key] for key, name in OUTPUTS.items()}
    queues, on_demand = {}, {}
    names = [DEFAULT_CLASS, *((deployed_settings(stack) or {}).get("classes") or {})]
    for name in names:
        if isinstance(name, str) and out.get(class_queue_output(name)):
            queues[name] = out[class_queue_output(name)]
        if isinstance(name, str) and out.get(on_demand_queue_output(name)):
            on_demand[name] = out[on_demand_queue_output(name)]
    return Infra(
        stack_name=stack["StackName"],
        region=region,
        queues=queues,
        on_demand_queues=on_demand,
        **fields,
    )


def require_knots(stack: dict) -> None:
    """Refuse to change or delete a stack of that name that knot did not create."""
    tags = {t["Key"]: t["Value"] for t in stack.get("Tags") or []}
    if tags.get(STACK_TAG) != stack["StackName"]:
        raise ConfigError(
            f"A CloudFormation stack named '{stack['StackName']}' exists but knot did not "
            f"create it (it has no tag {STACK_TAG}={stack['StackName']}), so knot leaves it "
            "alone. Pick another name with --knot-stack-name."
        )


def failure_reasons(events: list[dict]) -> list[str]:
    """The *_FAILED reasons of the latest stack operation, oldest first, from
    DescribeStackEvents (newest first). Cascade noise ("Resource creation cancelled")
    is dropped when a real cause is present."""
    reasons = []
    for event in events:
        status = event.get("ResourceStatus", "")
        is_stack = event.get("ResourceType") == "AWS::CloudFormation::Stack"
        if is_stack and event.get("ResourceStatusReason") == "User Initiated":
            break  # the start of the latest operation
        if status.endswith("_FAILED") and event.get("ResourceStatusReason"):
            reasons.append(f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}")
    real = [r for r in reasons if not r.endswith(_CASCADE)]
    return list(reversed(real or reasons))


_DOWN = "run 'knot --stack-name {name} infra down'"
_ADVICE = {
    "ROLLBACK_COMPLETE": "Its creation failed, so it cannot be updated. Fix the cause, "
    + _DOWN
    + ", then run knot again.",
    "UPDATE_ROLLBACK_FAILED": "Finish the rollback ('aws cloudformation "
    "continue-update-rollback --stack-name {name}'), then run knot again.",
    "UPDATE_ROLLBACK_COMPLETE": "The update was rolled back; the stack keeps its previous "
    "settings. Fix the cause and run knot again.",
    "DELETE_FAILED": "Remove what blocks the deletion, then " + _DOWN + " again.",
}
_ADVICE["ROLLBACK_FAILED"] = _ADVICE["CREATE_FAILED"] = _ADVICE["ROLLBACK_COMPLETE"]


def _advice(name: str, status: str) -> str:
    default = "Wait until it settles or " + _DOWN + ", then retry."
    return _ADVICE.get(status, default).format(name=name)


def _operation(status: str) -> str:
    if status.startswith(("ROLLBACK", "CREATE")):
        return "Creating"
    if status.startswith("UPDATE"):
        return "Updating"
    if status.startswith("DELETE"):
        return "Deleting"
    return "Using"


def _missing(exc: ClientError) -> bool:
    return error_code(exc) == "ValidationError" and "does not exist" in error_message(exc)


def _already_exists(exc: ClientError) -> bool:
    return error_code(exc) == "AlreadyExistsException"


def _busy_or_unchanged(exc: ClientError) -> bool:
    message = error_message(exc)
    busy = "IN_PROGRESS state" in message or _NO_UPDATES in message
    return error_code(exc) == "ValidationError" and busy


def _never(exc: ClientError) -> bool:
    return False


class StackOps:
    """CloudFormation calls on one stack, each translated into knot's errors."""

    def __init__(
        self,
        clients: Clients,
        name: str,
        timeout: float = WAIT_TIMEOUT,
        poll: float = POLL_SECONDS,
        role_arn: str | None = None,
    ) -> None:
        self.cfn = clients.cloudformation
        self.name = name
        self.timeout = timeout
        self.poll = poll
        # CloudFormation acts as this service role, so the caller needs no IAM rights
        # beyond passing it (see policy.py); it keeps the role for later operations.
        self.role = {"RoleARN": role_arn} if role_arn else {}

    def _call(
        self, method: str, doing: str, expected: Callable[[ClientError], bool] = _never, **kwargs
    ) -> dict | None:
        """Call CloudFormation; None when ``expected`` accepts the ClientError."""
        try:
            return getattr(self.cfn, method)(**kwargs)
        except ClientError as exc:
            if expected(exc):
                return None
            raise aws_error(exc, f"{doing} stack '{self.name}'", service="cloudformation") from exc
        except BotoCoreError as exc:
            raise aws_error(exc, f"{doing} stack '{self.name}'", service="cloudformation") from exc

    def describe(self) -> dict | None:
        """The stack, or None when it does not exist (or is fully deleted)."""
        found = self._call("describe_stacks", "describing", _missing, StackName=self.name)
        stacks = (found or {}).get("Stacks") or [None]
        if stacks[0] is None or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
            return None
        return stacks[0]

    def settled(self) -> dict | None:
        """Describe the stack, waiting while an operation on it is in progress."""
        deadline = time.monotonic() + self.timeout
        while True:
            stack = self.describe()
            if stack is None or not _in_progress(stack["StackStatus"]):
                return stack
            if time.monotonic() >= deadline:
                raise AwsError(
                    f"knot's stack '{self.name}' is still {stack['StackStatus']} after "
                    f"{self.timeout:.0f} s. Check it in the CloudFormation console and retry."
                )
            time.sleep(self.poll)

    def reasons(self) -> list[str]:
        page = self._call("describe_stack_events", "reading the events of", StackName=self.name)
        return failure_reasons((page or {}).get("StackEvents", []))

    def failure(self, stack: dict, what: str) -> AwsError:
        status = stack["StackStatus"]
        reasons = self.reasons() or [stack.get("StackStatusReason") or "no reason given"]
        return AwsError(
            f"{what} knot's stack '{self.name}' failed ({status}): "
            + "; ".join(reasons)
            + ". "
            + _advice(self.name, status)
        )

    def create(self, body: str, tags: list[dict]) -> bool:
        """CreateStack; False when another run created it first (AlreadyExists)."""
        kwargs = {"TemplateBody": body, "Capabilities": CAPABILITIES, "Tags": tags, **self.role}
        done = self._call(
            "create_stack", "creating", _already_exists, StackName=self.name, **kwargs
        )
        return done is not None

    def update(self, body: str, tags: list[dict]) -> bool:
        """UpdateStack; False when there was nothing to do or another update is running."""
        kwargs = {"TemplateBody": body, "Capabilities": CAPABILITIES, "Tags": tags, **self.role}
        done = self._call(
            "update_stack", "updating", _busy_or_unchanged, StackName=self.name, **kwargs
        )
        return done is not None

    def delete(self) -> None:
        self._call("delete_stack", "deleting", StackName=self.name)
        stack = self.settled()
        if stack is not None:
            raise self.failure(stack, "Deleting")

    def resources(self) -> dict[str, tuple[str, str]]:
        """{logical id: (type, physical id)} of the stack's live resources."""
        found = {}
        try:
            pages = self.cfn.get_paginator("list_stack_resources").paginate(StackName=self.name)
            for page in pages:
                for res in page["StackResourceSummaries"]:
                    # moto lists a resource it could not update with an empty id.
                    live = res.get("ResourceStatus") != "DELETE_COMPLETE"
                    if live and res.get("PhysicalResourceId"):
                        found[res["LogicalResourceId"]] = (
                            res["ResourceType"],
                            res["PhysicalResourceId"],
                        )
        except _BotoErrors as exc:
            raise aws_error(exc, f"listing stack '{self.name}'", service="cloudformation") from exc
        return found


# --- create or reuse -------------------------------------------------------------------


def ensure_infra(
    clients: Clients,
    config: KnotConfig,
    *,
    timeout: float = WAIT_TIMEOUT,
    poll: float = POLL_SECONDS,
    lease: LeaseTiming = LEASE_TIMING,
    say: Callable[[str], None] = lambda _line: None,
) -> Infra:
    """The shared stack for these settings: created if missing, updated in place when it
    lacks what this run needs, otherwise only read. Concurrent callers end with one stack,
    and an update is read, merged and made under the stack lease (``lease.py``), so no
    run's update drops what another run added. ``config.cfn_role``, when set, is the
    service role CloudFormation acts as. ``say`` hears one line before a create or an update,
    which take minutes on AWS."""
    check_network(clients, config)  # before the stack is created or changed
    ops = StackOps(clients, config.stack_name, timeout, poll, config.cfn_role)
    tags = Tags(config).as_list()
    updated = False
    with ExitStack() as held:
        leased: StackLease | None = None
        for _ in range(MAX_ROUNDS):
            stack = ops.settled()
            if stack is None:
                # CreateStack is atomic by name (AlreadyExists: next round waits); before
                # the stack there is no bucket for a lease, and none is needed.
                if ops.create(wanted_template(config, None)[0], tags):
                    say(_waiting(config.stack_name, "creating"))
                continue
            require_knots(stack)
            if stack["StackStatus"] not in USABLE_STATES:
                raise ops.failure(stack, _operation(stack["StackStatus"]))
            deployed = deployed_settings(stack)
            wanted = with_deployed(config, deployed)
            body, digest = wanted_template(config, deployed)
            if deployed_hash(stack) == digest:
                return _require_outputs(stack, clients.region)
            if leased is None:  # read again, merge and update, all under the lease
                leased = held.enter_context(_lease(clients, stack, lease))
                continue
            if updated and stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE":
                raise ops.failure(stack, "Updating")
            _refuse_conflicts(clients, stack, conflicts(deployed, wanted), updated)
            leased.check()
            if ops.update(body, tags):
                say(_waiting(config.stack_name, "updating"))
                updated = True
    raise AwsError(
        f"knot's stack '{config.stack_name}' kept changing while knot tried to bring it to "
        "the current settings. Run knot again; if this repeats, give runs that share the "
        "stack the same --knot-* settings, or use separate --knot-stack-name values."
    )


def _waiting(name: str, doing: str) -> str:
    return f"knot: {doing} the stack '{name}' (on AWS this takes a few minutes)"


def _lease(clients: Clients, stack: dict, timing: LeaseTiming) -> StackLease:
    """The lease in the stack's own bucket (its name read back from the stack, so checked)."""
    bucket = _require_outputs(stack, clients.region).bucket
    if bucket_name_problem(bucket):
        raise AwsError(
            f"knot's stack '{stack['StackName']}' names its bucket '{_shown_name(bucket)}', "
            "which is not a bucket name. Run 'knot infra down' and run knot again."
        )
    return StackLease(clients.s3, bucket, this_holder(), timing)


def _shown_name(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:80]


def wanted_template(config: KnotConfig, deployed: dict | None) -> tuple[str, str]:
    """The rendered template this run wants, given the deployed settings, and its hash."""
    config = with_deployed(config, deployed)
    boundary = boundary_arn(config.cfn_role, config.stack_name) if config.cfn_role else None
    template, digest = stamp(build_template(config, boundary))
    body = render(template)
    if len(body.encode()) > MAX_TEMPLATE_BYTES:
        names = ", ".join(klass.name for klass in config.classes)
        raise ConfigError(
            f"knot's stack '{config.stack_name}' would hold too many compute classes "
            f"({names}) for one CloudFormation template ({MAX_TEMPLATE_BYTES} bytes). Use "
            "fewer classes, or give some workflows their own --knot-stack-name."
        )
    return body, digest


def deployed_settings(stack: dict) -> dict | None:
    """The settings recorded in the stack's ``Settings`` output; None when it has none (a
    stack of an older knot) or it is not a JSON object."""
    raw = _outputs(stack).get(SETTINGS_OUTPUT)
    try:
        settings = json.loads(raw) if raw else None
    except ValueError:
        return None
    return settings if isinstance(settings, dict) else None


def with_deployed_buckets(config: KnotConfig, deployed: dict | None) -> KnotConfig:
    """This run's settings with the deployed buckets added: the job role keeps every
    bucket another run's jobs may be using."""
    listed = (deployed or {}).get("buckets")
    if not isinstance(listed, list):
        return config
    names = {name for name in listed if isinstance(name, str)} | set(extra_buckets(config))
    return dataclasses.replace(config, buckets=tuple(sorted(names)))


def with_deployed(config: KnotConfig, deployed: dict | None) -> KnotConfig:
    """This run's settings plus what other runs may be using: their buckets and their
    compute classes."""
    return with_deployed_classes(with_deployed_buckets(config, deployed), deployed)


def deployed_classes(deployed: dict | None) -> list[ComputeClass]:
    """The named classes recorded in the stack, checked like a flag (hostile input)."""
    recorded = (deployed or {}).get("classes")
    if not isinstance(recorded, dict):
        return []
    return [class_from_record(name, record) for name, record in sorted(recorded.items())]


def with_deployed_classes(config: KnotConfig, deployed: dict | None) -> KnotConfig:
    """The stack keeps every class another run defined (its jobs may be queued there);
    a class this run defines too takes this run's definition (see ``conflicts``)."""
    mine = {klass.name for klass in config.classes}
    kept = [klass for klass in deployed_classes(deployed) if klass.name not in mine]
    if not kept:
        return config
    return dataclasses.replace(config, classes=(*config.classes, *kept))


def conflicts(deployed: dict | None, wanted: KnotConfig) -> list[str]:
    """'<flag>: <deployed> deployed, <asked> asked' for each setting that differs."""
    asked = recorded_settings(wanted)
    found = [
        f"{flag} is {_show(deployed[key])} in the stack, this run asks for {_show(asked[key])}"
        for key, flag in SETTING_FLAGS.items()
        if deployed and key in deployed and deployed[key] != asked[key]
    ]
    return found + class_conflicts(deployed, wanted)


def class_conflicts(deployed: dict | None, wanted: KnotConfig) -> list[str]:
    stack = {klass.name: klass for klass in deployed_classes(deployed)}
    return [
        f"compute class '{klass.name}' is \"{stack[klass.name].describe()}\" in the stack, "
        f'this run asks for "{klass.describe()}" (--knot-compute-classes)'
        for klass in wanted.classes
        if klass.name in stack and stack[klass.name] != klass
    ]


def _show(value) -> str:
    return json.dumps(value, sort_keys=True)


def _refuse_conflicts(clients: Clients, stack: dict, found: list[str], updated: bool) -> None:
    """Settings may change while nothing runs on the stack; not under another run's jobs,
    and not back and forth with another run that is changing them too."""
    if not found:
        return
    if updated:
        why = "another knot run changed them after this run did"
    elif _queue_busy(clients, stack):
        why = "jobs are active in its queue, and knot does not change the stack under them"
    else:
        return
    raise ConfigError(
        f"knot's stack '{stack['StackName']}' is in use with other settings: "
        + "; ".join(found)
        + f" ({why}). Use the stack's values, wait until its jobs finish, or give this run "
        "its own stack with --knot-stack-name."
    )


def active_jobs(clients: Clients, queue_arn: str) -> list[str]:
    """Ids of the jobs in the queue that have not finished."""
    ids = []
    paginator = clients.batch.get_paginator("list_jobs")
    try:
        for state in ACTIVE_JOB_STATES:
            for page in paginator.paginate(jobQueue=queue_arn, jobStatus=state):
                ids += [job["jobId"] for job in page["jobSummaryList"]]
    except _BotoErrors as exc:
        raise aws_error(exc, "listing active jobs in knot's job queue", service="batch") from exc
    return ids


def _queue_busy(clients: Clients, stack: dict) -> bool:
    infra = infra_from_stack(stack, clients.region)
    if infra is None:
        return False
    return any(active_jobs(clients, queue) for queue in infra.queues.values())


def _require_outputs(stack: dict, region: str) -> Infra:
    infra = infra_from_stack(stack, region)
    if infra is None:
        raise AwsError(
            f"knot's stack '{stack['StackName']}' lacks outputs knot needs. It was not made "
            f"by this version of knot: run 'knot --stack-name {stack['StackName']} infra down' "
            "and run knot again."
        )
    return infra


def require_still_deployed(clients: Clients, config: KnotConfig) -> None:
    """Read the stack again before a run's first submission: it must still hold this
    run's buckets and compute classes. An update by a run that took no lease (an older
    knot, or someone's own UpdateStack) may have dropped them, and jobs would then fail
    with AccessDenied or land in no queue."""
    stack = StackOps(clients, config.stack_name).describe()
    if stack is None:
        raise AwsError(
            f"knot's stack '{config.stack_name}' was deleted while this run prepared its "
            "jobs ('knot infra down' by someone else?). Run knot again to create it."
        )
    missing = missing_from(deployed_settings(stack), config)
    if missing:
        raise AwsError(
            f"knot's stack '{config.stack_name}' no longer holds what this run needs: "
            + "; ".join(missing)
            + ". Another run's stack update dropped it after this run made sure of it. "
            "Run knot again: it adds it back, keeping what other runs use."
        )


def missing_from(deployed: dict | None, config: KnotConfig) -> list[str]:
    """What of this run's buckets and classes the deployed settings lack (read from the
    stack, so checked like a flag)."""
    listed = (deployed or {}).get("buckets")
    buckets = {b for b in listed if isinstance(b, str)} if isinstance(listed, list) else set()
    stack_classes = {klass.name: klass for klass in deployed_classes(deployed)}
    missing = [
        f"bucket '{name}' (the job role may not use it)"
        for name in extra_buckets(config)
        if name not in buckets
    ]
    missing += [
        f"compute class '{klass.name}' as \"{klass.describe()}\""
        for klass in config.classes
        if stack_classes.get(klass.name) != klass
    ]
    return missing


def describe_infra(clients: Clients, config: KnotConfig) -> Infra | None:
    """The deployed stack's Infra, or None when it does not exist or is not usable yet."""
    stack = StackOps(clients, config.stack_name).describe()
    if stack is None or stack["StackStatus"] not in USABLE_STATES:
        return None
    return infra_from_stack(stack, clients.region)
