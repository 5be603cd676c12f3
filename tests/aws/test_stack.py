"""API tier: the shared stack against in-process moto, and error paths with Stubber."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto.batch.models import batch_backends
from moto.cloudformation.models import CloudFormationBackend
from moto.core import DEFAULT_ACCOUNT_ID

from snakemake_executor_knot.aws.clients import Clients
from snakemake_executor_knot.aws.lease import LEASE_KEY, LeaseTiming
from snakemake_executor_knot.aws.policy import runner_policy
from snakemake_executor_knot.aws.stack import (
    Infra,
    StackOps,
    deployed_settings,
    describe_infra,
    ensure_infra,
    failure_reasons,
    require_still_deployed,
    wanted_template,
    with_deployed_buckets,
)
from snakemake_executor_knot.aws.status import recent_jobs
from snakemake_executor_knot.aws.teardown import teardown
from snakemake_executor_knot.aws.template.assembly import (
    HASH_OUTPUT,
    OUTPUTS,
    build_template,
    stamp,
)
from snakemake_executor_knot.aws.template.common import Tags
from snakemake_executor_knot.cli.infra import status_report
from snakemake_executor_knot.config.settings import KnotConfig, with_classes
from snakemake_executor_knot.emulator.patches.cloudformation import (
    serialised,
)
from snakemake_executor_knot.emulator.patches.s3 import atomic_conditional_writes
from snakemake_executor_knot.errors import AwsError, ConfigError

from ..conftest import REGION
from .test_policy import allowed

# moto's CloudFormation creates only the types it knows; it skips AWS::S3::BucketPolicy.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy")

CONFIG = KnotConfig(stack_name="knot", max_vcpus=16, buckets=("user-data",))


def stack(clients: Clients, name: str = "knot") -> dict:
    return clients.cloudformation.describe_stacks(StackName=name)["Stacks"][0]


def live_stacks(clients: Clients) -> list[str]:
    summaries = clients.cloudformation.list_stacks()["StackSummaries"]
    return [s["StackName"] for s in summaries if s["StackStatus"] != "DELETE_COMPLETE"]


# --- create, reuse, update ----------------------------------------------------------------


def test_first_run_creates_the_stack_and_its_resources(clients, calls):
    infra = ensure_infra(clients, CONFIG)
    assert calls["cloudformation.CreateStack"] == 1
    assert infra.stack_name == "knot" and infra.region == REGION
    clients.s3.head_bucket(Bucket=infra.bucket)
    (queue,) = clients.batch.describe_job_queues(jobQueues=[infra.job_queue_arn])["jobQueues"]
    assert len(queue["computeEnvironmentOrder"]) == 2
    repos = clients.ecr.describe_repositories(repositoryNames=[infra.repository_name])
    assert repos["repositories"][0]["repositoryUri"] == infra.repository_uri
    groups = clients.logs.describe_log_groups(logGroupNamePrefix=infra.log_group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [infra.log_group]
    role = infra.job_role_arn.rsplit("/", 1)[1]
    clients.iam.get_role(RoleName=role)
    tags = {t["Key"]: t["Value"] for t in stack(clients)["Tags"]}
    assert tags == {"knot:stack": "knot"}


def test_second_run_only_reads_the_stack(clients, calls):
    first = ensure_infra(clients, CONFIG)
    calls.reset()
    second = ensure_infra(clients, CONFIG)
    assert second == first
    assert calls["cloudformation.CreateStack"] == 0
    assert calls["cloudformation.UpdateStack"] == 0
    assert calls["cloudformation.DescribeStacks"] == 1


def test_changed_setting_updates_the_stack_once(clients, calls):
    first = ensure_infra(clients, CONFIG)
    changed = KnotConfig(stack_name="knot", max_vcpus=64, buckets=("user-data",))
    calls.reset()
    second = ensure_infra(clients, changed)
    assert calls["cloudformation.UpdateStack"] == 1
    assert calls["cloudformation.CreateStack"] == 0
    assert second == first  # updated in place: same bucket, queue, ...
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack(clients)["Outputs"]}
    assert outputs[HASH_OUTPUT] == stamp(build_template(changed))[1]
    calls.reset()
    ensure_infra(clients, changed)
    assert calls["cloudformation.UpdateStack"] == 0


def _job_role_buckets(clients: Clients, infra: Infra) -> list[str]:
    """The buckets of the job role's policy in the template the stack now holds (moto
    does not keep the inline policy as JSON, so read it where CloudFormation keeps it)."""
    body = clients.cloudformation.get_template(StackName=infra.stack_name)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    policies = template["Resources"]["JobRole"]["Properties"]["Policies"]
    (policy,) = [p for p in policies if p["PolicyName"] == "knot-job-s3"]
    listed = policy["PolicyDocument"]["Statement"][0]["Resource"]
    return sorted(arn["Fn::Sub"].rsplit(":", 1)[1] for arn in listed if "Fn::Sub" in arn)


def test_a_run_needing_other_buckets_adds_them_and_keeps_the_deployed_ones(clients, calls):
    infra = ensure_infra(clients, CONFIG)  # user-data
    other = KnotConfig(stack_name="knot", max_vcpus=16, buckets=("other-data",))
    calls.reset()
    assert ensure_infra(clients, other) == infra
    assert calls["cloudformation.UpdateStack"] == 1
    assert _job_role_buckets(clients, infra) == ["other-data", "user-data"]
    # Both runs now find what they need: neither updates the stack again.
    calls.reset()
    ensure_infra(clients, CONFIG)
    ensure_infra(clients, other)
    assert calls["cloudformation.UpdateStack"] == 0


def test_a_run_needing_fewer_buckets_leaves_the_stack_alone(clients, calls):
    ensure_infra(clients, CONFIG)
    calls.reset()
    infra = ensure_infra(clients, KnotConfig(stack_name="knot", max_vcpus=16))
    assert calls["cloudformation.UpdateStack"] == 0
    assert "user-data" in _job_role_buckets(clients, infra)


def test_other_settings_under_active_jobs_are_one_clear_error(clients, calls):
    infra = ensure_infra(clients, CONFIG)
    definition = job_definition(clients, "knot-0123abcd", {"knot:stack": "knot"})
    running_job(clients, infra, definition)
    calls.reset()
    other = KnotConfig(stack_name="knot", max_vcpus=64, buckets=("user-data",))
    with pytest.raises(ConfigError) as caught:
        ensure_infra(clients, other)
    assert calls["cloudformation.UpdateStack"] == 0
    message = str(caught.value)
    assert "--knot-max-vcpus is 16 in the stack, this run asks for 64" in message
    assert "jobs are active" in message and "--knot-stack-name" in message


def test_runs_changing_settings_back_and_forth_stop_with_one_error(clients, calls):
    """A run that takes no lease (an older knot, or someone's own UpdateStack) changes the
    stack right after this run's update: the next round sees values this run did not ask
    for and stops, naming both, instead of updating again."""
    ensure_infra(clients, CONFIG)
    rival = KnotConfig(stack_name="knot", max_vcpus=32, buckets=("user-data",))
    mine = KnotConfig(stack_name="knot", max_vcpus=64, buckets=("user-data",))
    rival_clients = Clients(session=boto3.Session(region_name=REGION))

    def rival_updates(**_kwargs) -> None:
        deployed = deployed_settings(stack(rival_clients))
        body = wanted_template(rival, deployed)[0]
        StackOps(rival_clients, "knot").update(body, Tags(rival).as_list())

    clients.cloudformation.meta.events.register(
        "after-call.cloudformation.UpdateStack", rival_updates
    )
    calls.reset()
    with pytest.raises(ConfigError, match="--knot-max-vcpus is 32 in the stack, this run asks "
                       "for 64 .another knot run changed them"):  # fmt: skip
        ensure_infra(clients, mine)
    assert calls["cloudformation.UpdateStack"] == 1


def test_settings_output_from_an_old_or_hostile_stack_is_ignored():
    assert deployed_settings({"Outputs": []}) is None
    broken = {"Outputs": [{"OutputKey": "Settings", "OutputValue": "{not json"}]}
    assert deployed_settings(broken) is None
    listed = {"Outputs": [{"OutputKey": "Settings", "OutputValue": "[1, 2]"}]}
    assert deployed_settings(listed) is None
    odd = {"buckets": ["fine-bucket", 7, None]}
    assert with_deployed_buckets(CONFIG, odd).buckets == ("fine-bucket", "user-data")
    with pytest.raises(ConfigError, match="--knot-buckets"):
        build_template(with_deployed_buckets(CONFIG, {"buckets": ["../../etc"]}))


def test_describe_infra_never_creates(clients, calls):
    assert describe_infra(clients, CONFIG) is None
    assert calls["cloudformation.CreateStack"] == 0
    infra = ensure_infra(clients, CONFIG)
    assert describe_infra(clients, CONFIG) == infra


@pytest.fixture
def atomic_create_stack(monkeypatch):
    """The emulator's fix (``emulator.patches.serialised``): AWS creates a stack name
    atomically; moto checks the name and then inserts the stack."""
    original = CloudFormationBackend.create_stack
    monkeypatch.setattr(CloudFormationBackend, "create_stack", serialised(original))


def test_concurrent_bootstrap_ends_with_one_shared_stack(moto, atomic_create_stack):
    # Both runs must have seen "no stack" before either creates it: a barrier in front
    # of CreateStack makes the race happen every time.
    barrier = threading.Barrier(2, timeout=10)
    results: dict[int, Infra] = {}
    errors: list[BaseException] = []
    creates = []

    def meet() -> None:  # a before-call hook must return None, or botocore skips the call
        creates.append(1)
        barrier.wait()

    def run(index: int) -> None:
        clients = Clients(session=boto3.Session(region_name=REGION))
        clients.cloudformation.meta.events.register(
            "before-call.cloudformation.CreateStack", lambda **_: meet()
        )
        try:
            results[index] = ensure_infra(clients, CONFIG, poll=0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(creates) == 2  # both tried; one got AlreadyExistsException and waited
    assert results[0] == results[1]
    clients = Clients(session=boto3.Session(region_name=REGION))
    assert live_stacks(clients) == ["knot"]
    # The default class's queue, and its on-demand one (where reclaimed-out jobs go).
    assert len(clients.batch.describe_job_queues()["jobQueues"]) == 2


def test_a_stack_knot_did_not_create_is_left_alone(clients, deletable_stack_resources):
    foreign = {"Resources": {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {}}}}
    clients.cloudformation.create_stack(StackName="knot", TemplateBody=json.dumps(foreign))
    with pytest.raises(ConfigError, match="did not create it"):
        ensure_infra(clients, CONFIG)
    with pytest.raises(ConfigError, match="did not create it"):
        teardown(clients, CONFIG, force=True)
    assert live_stacks(clients) == ["knot"]
    assert stack(clients)["StackStatus"] == "CREATE_COMPLETE"  # never updated


# --- failures -----------------------------------------------------------------------------


def _stack(status: str, outputs: list | None = None) -> dict:
    return {
        "StackName": "knot",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/knot/1",
        "CreationTime": datetime(2024, 1, 1, tzinfo=UTC),
        "StackStatus": status,
        "Outputs": outputs or [],
        "Tags": [{"Key": "knot:stack", "Value": "knot"}],
    }


def _event(logical: str, kind: str, status: str, reason: str | None = None) -> dict:
    event = {
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/knot/1",
        "EventId": f"{logical}-{status}-{reason}",
        "StackName": "knot",
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "Timestamp": datetime(2024, 1, 1, tzinfo=UTC),
        "ResourceStatus": status,
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


STACK = "AWS::CloudFormation::Stack"
CE = "AWS::Batch::ComputeEnvironment"
# DescribeStackEvents lists the newest event first.
ROLLBACK_EVENTS = [
    _event("knot", STACK, "ROLLBACK_COMPLETE"),
    _event("Vpc", "AWS::EC2::VPC", "DELETE_COMPLETE"),
    _event("knot", STACK, "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create"),
    _event("LogGroup", "AWS::Logs::LogGroup", "CREATE_FAILED", "Resource creation cancelled"),
    _event("SpotEnvironment", CE, "CREATE_FAILED", "Instance type q9.huge is not supported"),
    _event("Vpc", "AWS::EC2::VPC", "CREATE_COMPLETE"),
    _event("knot", STACK, "CREATE_IN_PROGRESS", "User Initiated"),
    _event("Old", CE, "CREATE_FAILED", "a failure of an earlier operation"),
]


def test_failure_reasons_keep_the_cause_of_the_latest_operation():
    assert failure_reasons(ROLLBACK_EVENTS) == [
        "SpotEnvironment: Instance type q9.huge is not supported"
    ]
    only_cascade = [ROLLBACK_EVENTS[3]]
    assert failure_reasons(only_cascade) == ["LogGroup: Resource creation cancelled"]


def test_failed_creation_waits_then_reports_the_failed_resources(plain_clients):
    cfn = plain_clients.cloudformation
    missing = "Stack with id knot does not exist"
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", missing)
        stub.add_response("create_stack", {"StackId": "arn:stack/knot/1"})
        for status in ("CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"):
            stub.add_response("describe_stacks", {"Stacks": [_stack(status)]})
        stub.add_response("describe_stack_events", {"StackEvents": ROLLBACK_EVENTS})
        with pytest.raises(AwsError) as caught:
            ensure_infra(plain_clients, CONFIG, poll=0)
        stub.assert_no_pending_responses()
    message = str(caught.value)
    assert "ROLLBACK_COMPLETE" in message
    assert "SpotEnvironment: Instance type q9.huge is not supported" in message
    assert "infra down" in message
    assert "earlier operation" not in message


def test_a_stack_stuck_in_progress_times_out(plain_clients):
    with Stubber(plain_clients.cloudformation) as stub:
        stub.add_response("describe_stacks", {"Stacks": [_stack("UPDATE_IN_PROGRESS")]})
        with pytest.raises(AwsError, match="still UPDATE_IN_PROGRESS"):
            ensure_infra(plain_clients, CONFIG, timeout=0, poll=0)


def test_failed_update_is_reported_not_retried_forever(plain_clients):
    old = [{"OutputKey": key, "OutputValue": f"knot-{key.lower()}"} for key in OUTPUTS]
    old.append({"OutputKey": HASH_OUTPUT, "OutputValue": "0" * 16})
    events = [
        _event("knot", STACK, "UPDATE_ROLLBACK_COMPLETE"),
        _event("JobQueue", "AWS::Batch::JobQueue", "UPDATE_FAILED", "Internal Failure"),
        _event("knot", STACK, "UPDATE_IN_PROGRESS", "User Initiated"),
    ]
    lease = {"Bucket": "knot-bucketname", "Key": LEASE_KEY}
    with Stubber(plain_clients.cloudformation) as stub, Stubber(plain_clients.s3) as s3:
        stub.add_response("describe_stacks", {"Stacks": [_stack("CREATE_COMPLETE", old)]})
        taken = {**lease, "IfNoneMatch": "*", "Body": ANY, "ContentType": ANY, "Metadata": ANY}
        s3.add_response("put_object", {"ETag": '"e1"'}, taken)
        stub.add_response("describe_stacks", {"Stacks": [_stack("CREATE_COMPLETE", old)]})
        stub.add_response("update_stack", {"StackId": "arn:stack/knot/1"})
        rolled_back = _stack("UPDATE_ROLLBACK_COMPLETE", old)
        stub.add_response("describe_stacks", {"Stacks": [rolled_back]})
        stub.add_response("describe_stack_events", {"StackEvents": events})
        s3.add_response("delete_object", {}, {**lease, "IfMatch": '"e1"'})
        with pytest.raises(AwsError, match="JobQueue: Internal Failure"):
            ensure_infra(plain_clients, CONFIG, poll=0)
        stub.assert_no_pending_responses()
        s3.assert_no_pending_responses()


def test_access_denied_on_describe_names_the_iam_action(plain_clients):
    with Stubber(plain_clients.cloudformation) as stub:
        stub.add_client_error("describe_stacks", "AccessDenied", "Access Denied", 403)
        with pytest.raises(ConfigError, match="cloudformation:DescribeStacks"):
            ensure_infra(plain_clients, CONFIG)


def test_status_report_of_a_failed_stack_shows_the_reasons(plain_clients):
    with Stubber(plain_clients.cloudformation) as stub:
        stub.add_response("describe_stacks", {"Stacks": [_stack("ROLLBACK_COMPLETE")]})
        stub.add_response("describe_stack_events", {"StackEvents": ROLLBACK_EVENTS})
        report = status_report(plain_clients, CONFIG)
    assert "ROLLBACK_COMPLETE" in report
    assert "SpotEnvironment: Instance type q9.huge is not supported" in report


# --- helpers for jobs (test_teardown.py uses them too) ------------------------------


def job_definition(clients: Clients, name: str, tags: dict) -> str:
    response = clients.batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128},
        tags=tags,
    )
    return response["jobDefinitionArn"]


def running_job(clients: Clients, infra: Infra, definition: str) -> str:
    job_id = clients.batch.submit_job(
        jobName="still-running", jobQueue=infra.job_queue_arn, jobDefinition=definition
    )["jobId"]
    # moto's Batch without Docker finishes every job at once; on AWS it would still run.
    job = batch_backends[DEFAULT_ACCOUNT_ID][REGION]._jobs[job_id]
    job.status, job.job_stopped = "RUNNING", False
    return job_id


# --- IAM policy -------------------------------------------------------------------------


def test_iam_policy_names_the_resources_the_stack_really_has(clients):
    """The runner policy's patterns match the names CloudFormation gave (moto's names)."""
    infra = ensure_infra(clients, CONFIG)
    policy = runner_policy("aws", "knot", ["user-data"])
    stack_tag = {"aws:ResourceTag/knot:stack": "knot"}
    to_batch = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    repository = clients.ecr.describe_repositories(repositoryNames=[infra.repository_name])
    group = f"arn:aws:logs:{REGION}:{DEFAULT_ACCOUNT_ID}:log-group:{infra.log_group}:*"
    assert allowed(policy, "s3:PutObject", f"arn:aws:s3:::{infra.bucket}/knot/specs/r/a.jsonl")
    assert allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{infra.bucket}")
    assert allowed(policy, "ecr:PutImage", repository["repositories"][0]["repositoryArn"])
    assert allowed(policy, "logs:GetLogEvents", group)
    assert allowed(policy, "batch:SubmitJob", infra.job_queue_arn, **stack_tag)
    classed = ensure_infra(clients, with_classes(CONFIG, "gpu=g5; bigdisk=m6i:500GB"))
    for queue in classed.queues.values():
        assert allowed(policy, "batch:SubmitJob", queue, **stack_tag)
    # Each spot class's on-demand queue, for jobs spot reclaimed out (run/spot.py).
    assert sorted(classed.on_demand_queues) == ["bigdisk", "default", "gpu"]
    for queue in classed.on_demand_queues.values():
        assert allowed(policy, "batch:SubmitJob", queue, **stack_tag)
    assert allowed(policy, "iam:PassRole", infra.job_role_arn, **to_batch)


# --- status and CLI -----------------------------------------------------------------------


def test_status_shows_retention_and_differing_settings(clients):
    ensure_infra(clients, KnotConfig(stack_name="knot", max_vcpus=16, files_expiry_days=9))
    report = status_report(clients, KnotConfig(stack_name="knot", max_vcpus=64))
    assert "local-mode copies (s3://<bucket>/knot/files/) 9 days" in report
    assert "images: the newest 1000 tagged, untagged after 1 day" in report
    assert "Differs:     --knot-max-vcpus is 16 in the stack, this run asks for 64" in report
    assert "Made by:     your own identity (no service role)" in report


# --- compute classes -------------------------------------------------------------------------

GPU = with_classes(CONFIG, "gpu=g5")


def _physical_ids(clients: Clients) -> dict[str, str]:
    pages = clients.cloudformation.get_paginator("list_stack_resources").paginate(StackName="knot")
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for page in pages
        for r in page["StackResourceSummaries"]
    }


def _environment_types(clients: Clients, queue: str) -> list[list[str]]:
    (found,) = clients.batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    arns = [o["computeEnvironment"] for o in found["computeEnvironmentOrder"]]
    environments = clients.batch.describe_compute_environments(computeEnvironments=arns)
    return [e["computeResources"]["instanceTypes"] for e in environments["computeEnvironments"]]


def test_adding_a_class_updates_in_place_under_the_other_classes_running_jobs(clients, calls):
    first = ensure_infra(clients, CONFIG)
    before = _physical_ids(clients)
    running = running_job(
        clients, first, job_definition(clients, "knot-00", {"knot:stack": "knot"})
    )
    calls.reset()
    second = ensure_infra(clients, GPU)
    assert calls["cloudformation.UpdateStack"] == 1
    after = _physical_ids(clients)
    # Every resource that was there is the same resource: nothing replaced.
    assert {key: after[key] for key in before} == before
    assert set(after) - set(before) == {
        "ClassGpuLaunchTemplate",
        "ClassGpuOnDemandEnvironment",
        "ClassGpuSpotEnvironment",
        "ClassGpuJobQueue",
        "ClassGpuOnDemandJobQueue",
    }
    assert second.job_queue_arn == first.job_queue_arn == second.queues["default"]
    assert _environment_types(clients, second.queues["gpu"]) == [["g5"], ["g5"]]
    (job,) = clients.batch.describe_jobs(jobs=[running])["jobs"]
    assert job["status"] == "RUNNING"


def test_a_run_that_does_not_mention_a_class_keeps_it(clients, calls):
    ensure_infra(clients, GPU)
    calls.reset()
    infra = ensure_infra(clients, CONFIG)
    assert calls["cloudformation.UpdateStack"] == 0
    assert sorted(infra.queues) == ["default", "gpu"]
    # A run with another class adds it next to the kept one.
    infra = ensure_infra(clients, with_classes(CONFIG, "bigdisk=m6i:500GB"))
    assert sorted(infra.queues) == ["bigdisk", "default", "gpu"]


def test_a_class_redefined_under_its_jobs_is_one_clear_error(clients, calls):
    infra = ensure_infra(clients, GPU)
    definition = job_definition(clients, "knot-01", {"knot:stack": "knot"})
    job = clients.batch.submit_job(
        jobName="gpu-job", jobQueue=infra.queues["gpu"], jobDefinition=definition
    )["jobId"]
    backend_job = batch_backends[DEFAULT_ACCOUNT_ID][REGION]._jobs[job]
    backend_job.status, backend_job.job_stopped = "RUNNING", False
    calls.reset()
    with pytest.raises(ConfigError) as caught:
        ensure_infra(clients, with_classes(CONFIG, "gpu=g4dn:ondemand"))
    assert calls["cloudformation.UpdateStack"] == 0
    message = str(caught.value)
    assert (
        "compute class 'gpu' is \"gpu=g5:30GB:spot:maxvcpus=16\" in the stack, this run asks "
        'for "gpu=g4dn:30GB:ondemand:maxvcpus=16" (--knot-compute-classes)'
    ) in message
    assert "jobs are active" in message


def test_an_idle_class_is_redefined_in_place(clients, calls):
    first = ensure_infra(clients, GPU)
    calls.reset()
    second = ensure_infra(clients, with_classes(CONFIG, "gpu=g4dn"))
    assert calls["cloudformation.UpdateStack"] == 1
    assert second.queues["gpu"] == first.queues["gpu"]
    # moto's CloudFormation does not pass updates on to Batch; the stack's template shows
    # what AWS would do.
    body = clients.cloudformation.get_template(StackName="knot")["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    compute = template["Resources"]["ClassGpuSpotEnvironment"]["Properties"]["ComputeResources"]
    assert compute["InstanceTypes"] == ["g4dn"]


def test_status_shows_each_class_its_queue_and_state(clients):
    infra = ensure_infra(clients, with_classes(CONFIG, "gpu=g5:ondemand; bigdisk=m6i:500GB"))
    report = status_report(clients, KnotConfig(stack_name="knot"))
    lines = report.splitlines()
    start = lines.index("Class:       default=optimal:30GB:spot:maxvcpus=16")
    assert lines[start:] == [
        "Class:       default=optimal:30GB:spot:maxvcpus=16",
        f"  queue:     {infra.job_queue_arn} (ENABLED, VALID)",
        "Class:       bigdisk=m6i:500GB:spot:maxvcpus=16",
        f"  queue:     {infra.queues['bigdisk']} (ENABLED, VALID)",
        "Class:       gpu=g5:30GB:ondemand:maxvcpus=16",
        f"  queue:     {infra.queues['gpu']} (ENABLED, VALID)",
    ]


def test_knot_jobs_lists_the_jobs_of_every_class(clients):
    infra = ensure_infra(clients, GPU)
    definition = job_definition(clients, "knot-02", {"knot:stack": "knot"})
    ids = {
        name: clients.batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=definition)[
            "jobId"
        ]
        for name, queue in infra.queues.items()
    }
    jobs = recent_jobs(clients.batch, [*infra.queues.values()], limit=10, since_ms=0)
    assert sorted(job["jobId"] for job in jobs) == sorted(ids.values())


# --- two runs updating at once: the stack lease ------------------------------------------

FAST_LEASE = LeaseTiming(ttl=30.0, renew=0.2, poll=0.02, timeout=30.0)


class NoLease:
    """What ensure_infra did before the lease: nothing between the read and the update."""

    def __enter__(self) -> NoLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def check(self) -> None:
        return None


def _interleaved_updates() -> tuple[Infra, list[BaseException]]:
    """Two runs add their own bucket at once. Right before the first run's UpdateStack the
    second run starts, and gets up to 2 s to read the stack and reach its own UpdateStack,
    which then waits until the first run is done: the interleaving that lost an update.
    Under the lease the second run cannot read before the first run's update is over."""
    first_cfg = KnotConfig(stack_name="knot", max_vcpus=16, buckets=("first-data",))
    second_cfg = KnotConfig(stack_name="knot", max_vcpus=16, buckets=("second-data",))
    first, second = (Clients(session=boto3.Session(region_name=REGION)) for _ in range(2))
    second_ready, first_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run_second() -> None:
        try:
            ensure_infra(second, second_cfg, poll=0.01, lease=FAST_LEASE)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    other = threading.Thread(target=run_second)

    def first_about_to_update(**_) -> None:  # a before-call hook must return None
        if not other.is_alive() and not first_done.is_set():
            other.start()
            second_ready.wait(2)

    def second_about_to_update(**_) -> None:
        second_ready.set()
        first_done.wait(10)

    first.cloudformation.meta.events.register(
        "before-call.cloudformation.UpdateStack", first_about_to_update
    )
    second.cloudformation.meta.events.register(
        "before-call.cloudformation.UpdateStack", second_about_to_update
    )
    infra = ensure_infra(first, first_cfg, poll=0.01, lease=FAST_LEASE)
    first_done.set()
    other.join(30)
    assert not other.is_alive()
    return infra, errors


@pytest.fixture
def conditional_writes():
    atomic_conditional_writes()  # the emulator's fix: S3 decides conditions atomically


def test_two_runs_updating_at_once_keep_both_buckets(clients, conditional_writes):
    ensure_infra(clients, CONFIG)
    infra, errors = _interleaved_updates()
    assert errors == []
    assert _job_role_buckets(clients, infra) == ["first-data", "second-data", "user-data"]
    require_still_deployed(clients, KnotConfig(stack_name="knot", buckets=("first-data",)))
    assert "Contents" not in clients.s3.list_objects_v2(Bucket=infra.bucket, Prefix=LEASE_KEY)


def test_without_the_lease_the_second_update_drops_the_first_runs_bucket(
    clients, conditional_writes, monkeypatch
):
    """The interleaving above is forced, not hoped for: without the lease it loses the
    first run's bucket every time, and the re-read before the first job catches it."""
    monkeypatch.setattr("snakemake_executor_knot.aws.stack._lease", lambda *_: NoLease())
    ensure_infra(clients, CONFIG)
    infra, errors = _interleaved_updates()
    assert errors == []
    assert _job_role_buckets(clients, infra) == ["second-data", "user-data"]
    mine = KnotConfig(stack_name="knot", buckets=("first-data",))
    with pytest.raises(AwsError) as caught:
        require_still_deployed(clients, mine)
    message = str(caught.value)
    assert "no longer holds what this run needs: bucket 'first-data'" in message
    assert "Another run's stack update dropped it" in message and "Run knot again" in message


def test_the_reread_finds_a_dropped_compute_class_and_a_deleted_stack(
    clients, deletable_stack_resources
):
    gpu = with_classes(CONFIG, "gpu=g5")
    ensure_infra(clients, gpu)
    require_still_deployed(clients, gpu)  # all there: nothing to say
    # Someone's own update, without the lease, to a template without the class.
    body = wanted_template(CONFIG, None)[0]
    clients.cloudformation.update_stack(
        StackName="knot", TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
        Tags=Tags(CONFIG).as_list(),
    )  # fmt: skip
    with pytest.raises(AwsError, match="compute class 'gpu' as \"gpu=g5:30GB:spot:maxvcpus=16\""):
        require_still_deployed(clients, gpu)
    teardown(clients, CONFIG, force=True)
    with pytest.raises(AwsError, match="was deleted while this run prepared its jobs"):
        require_still_deployed(clients, gpu)
