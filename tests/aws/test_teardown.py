"""API tier: tearing down the shared stack against in-process moto: what it deletes, what
it leaves alone, and that the runner's IAM policy allows every call the infra commands make."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase as fnmatch
from pathlib import Path

import pytest

from snakemake_executor_knot.aws.clients import Clients
from snakemake_executor_knot.aws.hosts import instance_types
from snakemake_executor_knot.aws.secrets import stack_secrets, store_envvars
from snakemake_executor_knot.aws.service_role import create_service_role, find_service_role
from snakemake_executor_knot.aws.stack import ensure_infra
from snakemake_executor_knot.aws.teardown import teardown
from snakemake_executor_knot.cli.infra import status_report
from snakemake_executor_knot.config.settings import with_classes
from snakemake_executor_knot.errors import ConfigError

from .test_hosts import register_instance
from .test_stack import CONFIG, job_definition, live_stacks, running_job

# moto's CloudFormation creates only the types it knows; it skips AWS::S3::BucketPolicy.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy")


@pytest.fixture
def deployed(clients, deletable_stack_resources):
    """A stack with objects, an image, job definitions (knot's and others') and a
    bucket knot did not create."""
    infra = ensure_infra(clients, CONFIG)
    for key in ("knot/specs/run/1.json", "inputs/a.txt"):
        clients.s3.put_object(Bucket=infra.bucket, Key=key, Body=b"x")
    clients.s3.create_bucket(Bucket="user-data")
    clients.s3.put_object(Bucket="user-data", Key="keep.txt", Body=b"mine")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    }
    clients.ecr.put_image(
        repositoryName=infra.repository_name, imageManifest=json.dumps(manifest), imageTag="abc"
    )
    arns = {
        "ours": job_definition(clients, "knot-0123abcd", {"knot:stack": "knot"}),
        "other_stack": job_definition(clients, "knot-4567ef01", {"knot:stack": "other"}),
        "not_knot": job_definition(clients, "user-def", {"knot:stack": "knot"}),
    }
    return infra, arns


def _status(clients: Clients, arn: str) -> str:
    (jd,) = clients.batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
    return jd["status"]


def test_teardown_refuses_while_jobs_are_active(clients, deployed):
    infra, arns = deployed
    running_job(clients, infra, arns["ours"])
    with pytest.raises(ConfigError, match="--yes"):
        teardown(clients, CONFIG)
    assert live_stacks(clients) == ["knot"]
    assert _status(clients, arns["ours"]) == "ACTIVE"


def test_teardown_deletes_only_what_knot_created(clients, deployed):
    infra, arns = deployed
    job_id = running_job(clients, infra, arns["ours"])
    secret = store_envvars(clients.secretsmanager, "knot", "run-1", {"TOKEN": "x"})
    other_secret = store_envvars(clients.secretsmanager, "other", "run-1", {"TOKEN": "x"})
    deleted = teardown(clients, CONFIG, force=True)
    assert f"secret {secret}" in deleted
    assert stack_secrets(clients.secretsmanager, "other") == [other_secret]
    assert f"job {job_id} (terminated)" in deleted
    assert f"2 objects in s3://{infra.bucket}" in deleted
    assert f"1 images in ECR repository {infra.repository_name}" in deleted
    assert f"job definition {arns['ours']}" in deleted
    assert deleted[-1] == "stack knot"
    assert live_stacks(clients) == []
    assert infra.bucket not in [b["Name"] for b in clients.s3.list_buckets()["Buckets"]]
    assert clients.batch.describe_job_queues()["jobQueues"] == []
    assert clients.batch.describe_compute_environments()["computeEnvironments"] == []
    assert clients.ecr.describe_repositories()["repositories"] == []
    assert not clients.logs.describe_log_groups(logGroupNamePrefix=infra.log_group)["logGroups"]
    # Untouched: another stack's definition, a definition not named knot-*, a user bucket.
    assert _status(clients, arns["ours"]) == "INACTIVE"
    assert _status(clients, arns["other_stack"]) == "ACTIVE"
    assert _status(clients, arns["not_knot"]) == "ACTIVE"
    body = clients.s3.get_object(Bucket="user-data", Key="keep.txt")["Body"].read()
    assert body == b"mine"


def test_teardown_without_a_stack_deletes_nothing(clients):
    assert teardown(clients, CONFIG) == []


# S3 operations whose IAM action has another name.
_S3_ACTIONS = {
    "ListObjectsV2": "ListBucket",
    "HeadBucket": "ListBucket",
    "DeleteObjects": "DeleteObject",
    "HeadObject": "GetObject",
}


def _allowed_actions() -> list[str]:
    policy = json.loads((Path(__file__).parents[2] / "docs" / "iam-policy.json").read_text())
    actions = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions += [listed] if isinstance(listed, str) else listed
    return actions


def test_iam_policy_allows_every_call_infra_makes(clients, deployed, calls):
    infra, arns = deployed
    running_job(clients, infra, arns["ours"])
    create_service_role(clients, "knot")  # the administrator, once
    instance = register_instance(clients, "m5.large")
    calls.attach(clients, services=("iam", "sts", "ecs"))
    calls.reset()
    # With a class added: the update, a second queue to describe, submit to and tear down.
    config = find_service_role(clients, with_classes(CONFIG, "gpu=g5"))
    infra = ensure_infra(clients, config)
    assert calls["cloudformation.UpdateStack"] == 1 and "gpu" in infra.queues
    status_report(clients, config)
    instance_types(clients.ecs, [instance])  # what the run record asks at the end
    teardown(clients, config, force=True)
    made = {
        f"{service}:{_S3_ACTIONS.get(op, op) if service == 's3' else op}"
        for service, op in (key.split(".") for key in calls.counts)
    }
    assert {"cloudformation:DeleteStack", "batch:TerminateJob", "s3:DeleteObject"} <= made
    assert "ecs:DescribeContainerInstances" in made
    assert "iam:GetRole" in made and config.cfn_role
    allowed = _allowed_actions()
    assert sorted(a for a in made if not any(fnmatch(a, p) for p in allowed)) == []
