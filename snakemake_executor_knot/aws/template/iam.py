"""The template's IAM: the roles of Batch, the instances, spot fleets and jobs, all on
the stack's own path, and the job role's policies (knot's bucket, the user's buckets, the
stack's envvars secrets).
"""

from __future__ import annotations

from ...config.settings import KnotConfig, parse_buckets
from .common import Tags, get_att, ref, resource, sub
from .storage import FILES_PREFIX, SPEC_PREFIX, USAGE_PREFIX


def role_path(stack_name: str, kind: str) -> str:
    """The IAM path of the stack's roles: ``job`` for the job role, ``infra`` for the rest.
    Paths, unlike generated role names, hold the whole stack name, so a policy can name
    exactly this stack's roles, and the job role apart from the others."""
    return f"/knot/{stack_name}/{kind}/"


def _assume(service: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def _managed(*names: str) -> list[dict]:
    return [sub(f"arn:${{AWS::Partition}}:iam::aws:policy/{name}") for name in names]


class _Roles:
    """Builds the stack's roles, all on the stack's path, all under one boundary if any."""

    def __init__(self, config: KnotConfig, tags: Tags, boundary: str | None) -> None:
        self.stack, self.tags, self.boundary = config.stack_name, tags, boundary

    def role(self, service: str, managed: list[dict] | None = None, kind="infra", **extra):
        props = {
            "AssumeRolePolicyDocument": _assume(service),
            "Path": role_path(self.stack, kind),
            "Tags": self.tags.as_list(),
            **extra,
        }
        if managed:
            props["ManagedPolicyArns"] = managed
        if self.boundary:
            props["PermissionsBoundary"] = self.boundary
        return resource("AWS::IAM::Role", props)


def iam_resources(config: KnotConfig, tags: Tags, boundary: str | None) -> dict:
    roles = _Roles(config, tags, boundary)
    resources = {
        "BatchServiceRole": roles.role(
            "batch.amazonaws.com", _managed("service-role/AWSBatchServiceRole")
        ),
        # The instance role pulls images from ECR and ships container logs (awslogs).
        "InstanceRole": roles.role(
            "ec2.amazonaws.com", _managed("service-role/AmazonEC2ContainerServiceforEC2Role")
        ),
        "InstanceProfile": resource(
            "AWS::IAM::InstanceProfile",
            {"Path": role_path(config.stack_name, "infra"), "Roles": [ref("InstanceRole")]},
        ),
        "JobRole": roles.role(
            "ecs-tasks.amazonaws.com",
            kind="job",
            Policies=[_job_s3_policy(config), _job_secrets_policy(config)],
        ),
    }
    if any(klass.spot for klass in config.compute_classes):
        resources["SpotFleetRole"] = roles.role(
            "spotfleet.amazonaws.com", _managed("service-role/AmazonEC2SpotFleetTaggingRole")
        )
    return resources


def extra_buckets(config: KnotConfig) -> list[str]:
    """The user's extra buckets as plain names, sorted (also those read back from a
    deployed stack, so they are checked again here)."""
    return sorted(set(parse_buckets(",".join(config.buckets))))


def _job_s3_policy(config: KnotConfig) -> dict:
    """Jobs read inputs and write outputs in knot's bucket and the user's buckets only.
    They read their specs but cannot change them: a spec says what a job runs, and the
    spec's digest travels in SubmitJob only as a second line of defence."""
    extra = extra_buckets(config)
    bucket_arns = [get_att("Bucket", "Arn")]
    bucket_arns += [sub(f"arn:${{AWS::Partition}}:s3:::{name}") for name in extra]
    writable = [sub(f"${{Bucket.Arn}}/{prefix}*") for prefix in (FILES_PREFIX, USAGE_PREFIX)]
    writable += [sub(f"arn:${{AWS::Partition}}:s3:::{name}/*") for name in extra]
    specs = sub(f"${{Bucket.Arn}}/{SPEC_PREFIX}*")
    statements = [
        {
            "Sid": "ListBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": bucket_arns,
        },
        {"Sid": "ReadSpecs", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [specs]},
        {
            "Sid": "ReadWriteFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": writable,
        },
        {
            "Sid": "NeverWriteSpecs",
            "Effect": "Deny",
            "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [specs],
        },
    ]
    return {
        "PolicyName": "knot-job-s3",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
    }


def _job_secrets_policy(config: KnotConfig) -> dict:
    """Jobs read the envvars secrets of their own stack only (aws/secrets.py names them
    knot/<stack>/<run id>); the * also covers the random suffix Secrets Manager appends to
    every secret's ARN."""
    arn = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
    statement = {
        "Sid": "ReadEnvvarsSecrets",
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue"],
        "Resource": [sub(f"{arn}:secret:knot/{config.stack_name}/*")],
    }
    return {
        "PolicyName": "knot-job-secrets",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [statement]},
    }
