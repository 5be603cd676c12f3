"""The IAM policies as documents, evaluated with moto's IAM policy engine: what they allow,
and that the way from the runner's policy to an administrator is closed.

moto's engine treats a condition key missing from the request as satisfied, so every
check here passes the condition values the request would carry on AWS. It also answers
DENIED for an Allow statement whose condition fails, before looking at its resource, which
would let one statement veto another; so ``allowed`` asks statement by statement, as IAM
does for Allow statements (the policies here have no Deny)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.policy_conditions import CONDITION_OPERATIONS

from snakemake_executor_knot.aws.jobdef import build_job_definition
from snakemake_executor_knot.aws.lease import LEASE_KEY
from snakemake_executor_knot.aws.policy import (
    VERSION,
    boundary_arn,
    boundary_policy,
    runner_policy,
    service_role_name,
    service_role_policy,
)
from snakemake_executor_knot.aws.service_role import create_service_role, find_service_role
from snakemake_executor_knot.aws.stack import ensure_infra
from snakemake_executor_knot.aws.template.assembly import build_template
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.errors import ConfigError

from ..conftest import IMAGE, make_infra

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role"
RUNNER = runner_policy("aws", "knot", ["my-data"])
IAM_WRITES = ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"]


def allowed(policy: dict, action: str, resource: str, **context: str) -> bool:
    """Whether any statement of ``policy`` allows the request."""
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    for statement in policy["Statement"]:
        engine = IAMPolicy(json.dumps({"Version": policy["Version"], "Statement": [statement]}))
        if (
            engine.is_action_permitted(action, resource, None, context)
            == PermissionResult.PERMITTED
        ):
            return True
    return False


def test_docs_policy_is_the_rendered_default():
    path = Path(__file__).parents[2] / "docs" / "iam-policy.json"
    assert json.loads(path.read_text()) == runner_policy("aws", "knot")


@pytest.mark.parametrize("action", IAM_WRITES)
@pytest.mark.parametrize(
    "role",
    ["knot-admin", "knot/knot/job/x", "knot/knot/infra/x", "admin", service_role_name("knot")],
)
def test_the_runner_cannot_create_or_empower_any_role(action, role):
    boundary = boundary_arn(f"{ROLE}/x", "knot")
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    context = {"iam:PermissionsBoundary": boundary, "iam:PolicyARN": admin}
    assert not allowed(RUNNER, action, f"{ROLE}/{role}", **context)


def test_the_runner_policy_holds_no_iam_write_at_all():
    actions = {a for s in RUNNER["Statement"] for a in s["Action"]}
    assert {a for a in actions if a.startswith("iam:")} == {"iam:GetRole", "iam:PassRole"}
    assert not any("*" in a for a in actions if not a.startswith("ecr:Get"))


SERVICES = ["cloudformation.amazonaws.com", "batch.amazonaws.com", "ecs-tasks.amazonaws.com",
            "ec2.amazonaws.com", "lambda.amazonaws.com"]  # fmt: skip


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("role", ["admin", "knot-admin", "knot/knot/infra/BatchServiceRole-1"])
def test_the_runner_cannot_pass_an_arbitrary_role(service, role):
    assert not allowed(RUNNER, "iam:PassRole", f"{ROLE}/{role}", **{"iam:PassedToService": service})


def test_the_runner_passes_the_service_role_to_cloudformation_only():
    service_role = f"{ROLE}/{service_role_name('knot')}"
    for service in SERVICES:
        ok = allowed(RUNNER, "iam:PassRole", service_role, **{"iam:PassedToService": service})
        assert ok == (service == "cloudformation.amazonaws.com"), service


def test_the_runner_passes_the_job_role_to_batch_only():
    job_role = f"{ROLE}/knot/knot/job/knot-JobRole-ABC"
    for service in SERVICES:
        ok = allowed(RUNNER, "iam:PassRole", job_role, **{"iam:PassedToService": service})
        assert ok == (service in ("batch.amazonaws.com", "ecs-tasks.amazonaws.com")), service
    # Another stack's job role is not this stack's ("knot" is a prefix of "knot-dev").
    other = f"{ROLE}/knot/knot-dev/job/knot-dev-JobRole-ABC"
    assert not allowed(
        RUNNER, "iam:PassRole", other, **{"iam:PassedToService": "batch.amazonaws.com"}
    )


def test_jobs_are_terminated_and_submitted_only_on_the_stacks_tagged_resources():
    job = f"arn:aws:batch:us-east-1:{ACCOUNT}:job/0123-abcd"
    queue = f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/JobQueue-XYZ"
    tag = "aws:ResourceTag/knot:stack"
    assert allowed(RUNNER, "batch:TerminateJob", job, **{tag: "knot"})
    assert not allowed(RUNNER, "batch:TerminateJob", job, **{tag: "someone-else"})
    assert allowed(RUNNER, "batch:SubmitJob", queue, **{tag: "knot"})
    assert not allowed(RUNNER, "batch:SubmitJob", queue, **{tag: "other"})


def test_storage_buckets_can_be_checked_and_created():
    assert allowed(RUNNER, "s3:ListBucket", "arn:aws:s3:::my-data")  # HeadBucket
    assert allowed(RUNNER, "s3:CreateBucket", "arn:aws:s3:::my-data")
    assert allowed(RUNNER, "s3:PutObject", "arn:aws:s3:::my-data/results/x.txt")
    assert not allowed(RUNNER, "s3:CreateBucket", "arn:aws:s3:::someone-elses")
    assert not allowed(RUNNER, "s3:GetObject", "arn:aws:s3:::someone-elses/secret")


@pytest.mark.parametrize("stack", ["knot", "team-pipeline-7", "x" * 128])
@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_any_partition_and_stack_name(partition, stack):
    policy = runner_policy(partition, stack)
    text = json.dumps(policy)
    arns = [r for s in policy["Statement"] for r in _resources(s) if r != "*"]
    assert all(r.startswith(f"arn:{partition}:") for r in arns)
    other = {"aws": "aws-cn", "aws-cn": "aws", "aws-us-gov": "aws"}[partition]
    assert f"arn:{other}:" not in text
    assert len(service_role_name(stack)) <= 64
    stack_arn = f"arn:{partition}:cloudformation:eu-west-1:{ACCOUNT}:stack/{stack}/abc"
    assert allowed(policy, "cloudformation:UpdateStack", stack_arn)
    job_role = f"arn:{partition}:iam::{ACCOUNT}:role/knot/{stack}/job/r"
    context = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert allowed(policy, "iam:PassRole", job_role, **context)


def _resources(statement: dict) -> list[str]:
    listed = statement["Resource"]
    return [listed] if isinstance(listed, str) else listed


# --- the service role ----------------------------------------------------------------


SERVICE = service_role_policy("aws", "knot", ACCOUNT)
BOUNDARY = boundary_arn(f"{ROLE}/{service_role_name('knot')}", "knot")


def test_the_service_role_creates_roles_only_with_knots_boundary():
    role = f"{ROLE}/knot/knot/job/knot-JobRole-1"
    assert allowed(SERVICE, "iam:CreateRole", role, **{"iam:PermissionsBoundary": BOUNDARY})
    other = f"arn:aws:iam::{ACCOUNT}:policy/AdminBoundary"
    assert not allowed(SERVICE, "iam:CreateRole", role, **{"iam:PermissionsBoundary": other})
    assert not allowed(SERVICE, "iam:PutRolePolicy", role, **{"iam:PermissionsBoundary": ""})
    outside = f"{ROLE}/admin"
    assert not allowed(SERVICE, "iam:CreateRole", outside, **{"iam:PermissionsBoundary": BOUNDARY})
    assert not allowed(SERVICE, "iam:DeleteRolePermissionsBoundary", role)


def test_the_service_role_attaches_only_knots_managed_policies():
    role = f"{ROLE}/knot/knot/infra/knot-BatchServiceRole-1"
    batch = "arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole"
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    context = {"iam:PermissionsBoundary": BOUNDARY}
    assert allowed(SERVICE, "iam:AttachRolePolicy", role, **context, **{"iam:PolicyARN": batch})
    assert not allowed(SERVICE, "iam:AttachRolePolicy", role, **context, **{"iam:PolicyARN": admin})


def test_the_service_role_deletes_only_the_stacks_network():
    vpc = f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc/vpc-123"
    tag = "aws:ResourceTag/knot:stack"
    assert allowed(SERVICE, "ec2:DeleteVpc", vpc, **{tag: "knot"})
    assert not allowed(SERVICE, "ec2:DeleteVpc", vpc, **{tag: "production"})
    # Tags go on only while creating: no adopting a resource by tagging it.
    assert not allowed(SERVICE, "ec2:CreateTags", vpc, **{"ec2:CreateAction": "", tag: "x"})
    assert allowed(SERVICE, "ec2:CreateTags", vpc, **{"ec2:CreateAction": "CreateVpc", tag: ""})


def test_the_boundary_caps_every_role_below_iam_writes():
    cap = boundary_policy("aws", "knot")
    for action in [*IAM_WRITES, "iam:CreateUser", "iam:CreateAccessKey", "sts:AssumeRole"]:
        assert not allowed(cap, action, f"{ROLE}/anything"), action
    assert not allowed(cap, "iam:PassRole", f"{ROLE}/admin")
    assert allowed(cap, "iam:PassRole", f"{ROLE}/knot/knot/infra/knot-InstanceRole-1")
    assert allowed(cap, "s3:GetObject", "arn:aws:s3:::my-data/input.txt")


# --- the service role on moto ------------------------------------------------------------


def test_service_role_is_created_found_and_used_for_the_stack(clients, deletable_stack_resources):
    done = create_service_role(clients, "knot")
    assert done == ["created policy /knot/knot/knot-boundary-knot", "created role knot-cfn-knot"]
    again = create_service_role(clients, "knot")  # an administrator re-runs it: updated
    assert again == ["updated policy /knot/knot/knot-boundary-knot", "updated role knot-cfn-knot"]
    config = find_service_role(clients, KnotConfig(stack_name="knot"))
    assert config.cfn_role == f"{ROLE}/knot-cfn-knot"
    passed = []
    clients.cloudformation.meta.events.register(
        "provide-client-params.cloudformation.CreateStack",
        lambda params, **_: passed.append(params.get("RoleARN")),
    )
    infra = ensure_infra(clients, config)
    assert passed == [config.cfn_role]
    role = clients.iam.get_role(RoleName=infra.job_role_arn.rsplit("/", 1)[1])["Role"]
    assert role["Path"] == "/knot/knot/job/"
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY


def test_without_a_service_role_the_caller_makes_the_stack(clients):
    assert find_service_role(clients, KnotConfig()).cfn_role is None


def test_a_cfn_role_that_is_not_an_arn_is_a_config_error(clients):
    with pytest.raises(ConfigError, match="--knot-cfn-role"):
        find_service_role(clients, KnotConfig(cfn_role="knot-cfn-knot"))


# --- the boundary covers what the stack's roles need -----------------------------------


TEMPLATE_VALUES = {
    "${AWS::Partition}": "aws",
    "${AWS::Region}": "us-east-1",
    "${AWS::AccountId}": ACCOUNT,
    "${Bucket.Arn}": "arn:aws:s3:::knot-bucket-1abc",
}
STACK_ROLE = f"{ROLE}/knot/knot/infra/knot-InstanceRole-1"
# What managed policies grant and no role of the stack uses: it has no load balancers.
NOT_NEEDED = {
    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
    "elasticloadbalancing:RegisterTargets",
}


def _resolved(value) -> str:
    """A template ARN as CloudFormation would make it; a trailing * becomes a name."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return TEMPLATE_VALUES["${" + ".".join(value["Fn::GetAtt"]) + "}"]
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    for name, concrete in TEMPLATE_VALUES.items():
        text = text.replace(name, concrete)
    return text[:-1] + "run-1-AbCdEf" if text.endswith("*") and text != "*" else text


def _role_statements(template: dict):
    """(role, statement) for every Allow statement of every role of the template: its
    inline policies, and the AWS managed policies it attaches (moto's copies of them)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    managed = json.loads(aws_managed_policies_data)
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        documents = [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
        for arn in res["Properties"].get("ManagedPolicyArns", []):
            documents.append(managed[arn["Fn::Sub"].rsplit("/", 1)[1]]["Document"])
        for document in documents:
            for statement in document["Statement"]:
                if statement["Effect"] == "Allow":
                    yield name, statement


def _requests(statement: dict):
    """(action, resource, context) of each request a statement lets its role make: a
    resource of * is the stack's own (a role passes only the stack's roles), and the
    request carries each combination of the statement's StringEquals values."""
    equals = statement.get("Condition", {}).get("StringEquals", {})
    choices = [[v] if isinstance(v, str) else v for v in equals.values()]
    contexts = [dict(zip(equals, values, strict=True)) for values in itertools.product(*choices)]
    actions = statement["Action"]
    resources = statement["Resource"]
    for action in [actions] if isinstance(actions, str) else actions:
        for resource in [resources] if isinstance(resources, (str, dict)) else resources:
            arn = _resolved(resource)
            for context in contexts:
                yield action, STACK_ROLE if arn == "*" else arn, context


def _boundary_gaps(boundary: dict) -> list[str]:
    template = build_template(KnotConfig(stack_name="knot"), BOUNDARY)
    assert {name for name, _ in _role_statements(template)} >= {"JobRole", "InstanceRole"}
    return sorted(
        f"{role}: {action} on {resource}"
        for role, statement in _role_statements(template)
        for action, resource, context in _requests(statement)
        if action not in NOT_NEEDED and not allowed(boundary, action, resource, **context)
    )


def test_the_boundary_allows_every_action_of_every_stack_role():
    assert _boundary_gaps(boundary_policy("aws", "knot")) == []


def test_the_boundary_check_finds_a_gap():
    """The check above can fail: a boundary without the secrets statement denies the job
    role its envvars."""
    cut = boundary_policy("aws", "knot")
    cut["Statement"] = [s for s in cut["Statement"] if s["Sid"] != "ReadEnvvarsSecrets"]
    (gap,) = _boundary_gaps(cut)
    assert gap.startswith("JobRole: secretsmanager:GetSecretValue on arn:aws:secretsmanager:")


def test_every_boundary_statement_serves_some_role():
    template = build_template(KnotConfig(stack_name="knot"), BOUNDARY)
    requests = [r for _, st in _role_statements(template) for r in _requests(st)]
    for statement in boundary_policy("aws", "knot")["Statement"]:
        single = {"Version": VERSION, "Statement": [statement]}
        used = any(allowed(single, a, r, **c) for a, r, c in requests)
        assert used, statement["Sid"]


# --- job definitions: knot's uid, never privileged ---------------------------------------


def _bool_condition(expected, actual: str) -> bool:
    """IAM's Bool operator, which moto's engine skips (it treats every unknown operator
    as met)."""
    values = [expected] if isinstance(expected, str) else expected
    return actual.lower() in [str(v).lower() for v in values]


@pytest.fixture
def bool_conditions(monkeypatch):
    monkeypatch.setitem(CONDITION_OPERATIONS, "Bool", _bool_condition)


DEFINITION = f"arn:aws:batch:us-east-1:{ACCOUNT}:job-definition/knot-0123abcd0123abcd"


@pytest.mark.parametrize(
    ("privileged", "user", "ok"),
    [("false", "1000", True), ("true", "1000", False), ("false", "0", False),
     ("false", "root", False), ("true", "0", False)],
)  # fmt: skip
def test_the_runner_registers_only_unprivileged_definitions_as_knots_uid(
    bool_conditions, privileged, user, ok
):
    context = {"batch:Privileged": privileged, "batch:User": user}
    assert allowed(RUNNER, "batch:RegisterJobDefinition", DEFINITION, **context) == ok


def test_knots_own_job_definition_is_what_the_runner_may_register(bool_conditions):
    request = build_job_definition(IMAGE, make_infra(), KnotConfig())
    container = request["containerProperties"]
    context = {
        "batch:Privileged": str(container["privileged"]).lower(),
        "batch:User": container["user"],
    }
    arn = f"arn:aws:batch:us-east-1:{ACCOUNT}:job-definition/{request['jobDefinitionName']}"
    assert allowed(RUNNER, "batch:RegisterJobDefinition", arn, **context)


def test_the_runner_holds_the_stack_lease_and_no_other_key_outside_knots_prefix():
    bucket = "arn:aws:s3:::knot-bucket-1abc"
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert allowed(RUNNER, action, f"{bucket}/{LEASE_KEY}"), action
    assert not allowed(RUNNER, "s3:AbortMultipartUpload", f"{bucket}/{LEASE_KEY}")
    assert not allowed(RUNNER, "s3:PutObject", f"{bucket}/other.lease")
    assert allowed(RUNNER, "s3:PutObject", f"{bucket}/knot/specs/run/a.jsonl")
    # Jobs may not touch it: the job role writes only under its files and usage prefixes
    # (a trailing * of the template stands for run-1-AbCdEf here, see _resolved).
    template = build_template(KnotConfig(stack_name="knot"), BOUNDARY)
    job_role = {"Version": VERSION, "Statement": []}
    for policy in template["Resources"]["JobRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                resources = [_resolved(r) for r in statement["Resource"]]
                job_role["Statement"].append({**statement, "Resource": resources})
    lease = TEMPLATE_VALUES["${Bucket.Arn}"] + "/" + LEASE_KEY
    assert not allowed(job_role, "s3:PutObject", lease)
    assert not allowed(job_role, "s3:DeleteObject", lease)
    assert allowed(
        job_role, "s3:PutObject", TEMPLATE_VALUES["${Bucket.Arn}"] + "/knot/files/run-1-AbCdEf"
    )
