"""knot's shared infrastructure as one CloudFormation template, built as a dict (pure).

Every setting is written into the template itself (no CloudFormation Parameters), so the
template's content hash alone says whether a deployed stack matches the settings.

The template must satisfy both AWS (checked with cfn-lint) and moto's CloudFormation, which
the emulator and the tests use. moto quirks that shaped it:
- moto creates only the resource types it knows and skips the rest with a warning.
  AWS::S3::BucketPolicy is one of them, so the TLS-only policy exists on AWS only.
- moto ignores IAM ManagedPolicyArns, bucket public-access and lifecycle settings, and
  compute-environment tags; they are harmless there and needed on AWS.
- moto resolves ``Fn::GetAZs: ""`` to us-east-1 zones in every region, and accepts any
  known zone for a subnet, so the same template works in any emulated region.
- moto's CloudFormation never deletes route tables, Batch queues or compute environments
  (their models lack a delete), so deleting the stack in the emulator needs a fix there.
- moto names generated ECR repositories with upper-case letters, which Docker refuses;
  the repository and the log group therefore get explicit (lower-case) names.
"""

from __future__ import annotations

import json
import re

from ..errors import ConfigError
from ..names import short_hash
from ..settings import KnotConfig

# Job specs live under this prefix of knot's bucket and expire after SPEC_EXPIRY_DAYS.
SPEC_PREFIX = "knot/specs/"
SPEC_EXPIRY_DAYS = 7
LOG_RETENTION_DAYS = 30
UNTAGGED_IMAGE_DAYS = 1
STACK_TAG = "knot:stack"
HASH_OUTPUT = "TemplateHash"
# The stack's outputs, and the field of ``stack.Infra`` each one fills.
OUTPUTS = {
    "BucketName": "bucket",
    "RepositoryName": "repository_name",
    "RepositoryUri": "repository_uri",
    "JobQueueArn": "job_queue_arn",
    "LogGroupName": "log_group",
    "JobRoleArn": "job_role_arn",
}

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_VPC_CIDR = "10.70.0.0/16"
_SUBNET_CIDRS = ("10.70.0.0/18", "10.70.64.0/18")


def ref(name: str) -> dict:
    return {"Ref": name}


def get_att(name: str, attribute: str) -> dict:
    return {"Fn::GetAtt": [name, attribute]}


def sub(text: str) -> dict:
    return {"Fn::Sub": text}


class Tags:
    """The user's tags plus ``knot:stack``, in the two shapes CloudFormation uses. The stack
    carries them too, so keep them to tags that rarely change: CloudFormation copies stack
    tags onto every resource."""

    def __init__(self, config: KnotConfig) -> None:
        self.mapping = {**config.tag_dict, STACK_TAG: config.stack_name}

    def as_list(self) -> list[dict]:
        return [{"Key": k, "Value": v} for k, v in sorted(self.mapping.items())]

    def as_map(self) -> dict:
        return dict(sorted(self.mapping.items()))


def build_template(config: KnotConfig) -> dict:
    """The whole stack: IAM, network, bucket, repository, log group, compute, queue."""
    tags = Tags(config)
    resources = {
        **_iam(config, tags),
        **_network(tags),
        **_bucket(tags),
        **_repository(config, tags),
        **_log_group(config, tags),
        **_compute(config, tags),
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"knot: shared AWS Batch infrastructure (stack {config.stack_name})",
        "Resources": resources,
        "Outputs": _outputs(),
    }


def template_hash(template: dict) -> str:
    """Stable content hash of a template (canonical JSON, sha256, 16 hex digits)."""
    return short_hash(template, 16)


def stamp(template: dict) -> tuple[dict, str]:
    """The template with its own content hash added as the ``TemplateHash`` output.

    The hash lives in an output, not in a stack tag: CloudFormation copies stack tags onto
    every resource, and a changed tag on a Batch compute environment or job queue forces
    their replacement (cloudformation-coverage-roadmap#2270), which would kill queued jobs
    on every settings change."""
    digest = template_hash(template)
    outputs = {**template["Outputs"], HASH_OUTPUT: {"Value": digest}}
    return {**template, "Outputs": outputs}, digest


def render(template: dict) -> str:
    """Compact JSON for CreateStack/UpdateStack (TemplateBody is capped at 51,200 bytes)."""
    return json.dumps(template, sort_keys=True, separators=(",", ":"))


def repository_name(config: KnotConfig) -> str:
    return f"{config.stack_name.lower()}-rules"


def log_group_name(config: KnotConfig) -> str:
    return f"/knot/{config.stack_name}"


# --- IAM -----------------------------------------------------------------------------


def _assume(service: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def _managed(*names: str) -> list[dict]:
    return [sub(f"arn:${{AWS::Partition}}:iam::aws:policy/{name}") for name in names]


def _role(service: str, tags: Tags, managed: list[dict] | None = None, **extra) -> dict:
    props = {"AssumeRolePolicyDocument": _assume(service), "Tags": tags.as_list(), **extra}
    if managed:
        props["ManagedPolicyArns"] = managed
    return {"Type": "AWS::IAM::Role", "Properties": props}


def _iam(config: KnotConfig, tags: Tags) -> dict:
    resources = {
        "BatchServiceRole": _role(
            "batch.amazonaws.com", tags, _managed("service-role/AWSBatchServiceRole")
        ),
        # The instance role pulls images from ECR and ships container logs (awslogs).
        "InstanceRole": _role(
            "ec2.amazonaws.com",
            tags,
            _managed("service-role/AmazonEC2ContainerServiceforEC2Role"),
        ),
        "InstanceProfile": {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"Roles": [ref("InstanceRole")]},
        },
        "JobRole": _role(
            "ecs-tasks.amazonaws.com",
            tags,
            Policies=[_job_s3_policy(config), _job_secrets_policy(config)],
        ),
    }
    if config.spot:
        resources["SpotFleetRole"] = _role(
            "spotfleet.amazonaws.com",
            tags,
            _managed("service-role/AmazonEC2SpotFleetTaggingRole"),
        )
    return resources


def extra_buckets(config: KnotConfig) -> list[str]:
    """The user's extra buckets as plain names (an ``s3://`` prefix is tolerated)."""
    names = []
    for raw in config.buckets:
        name = raw.removeprefix("s3://").strip("/")
        if not _BUCKET_NAME.fullmatch(name):
            raise ConfigError(
                f"--knot-buckets: '{raw}' is not an S3 bucket name. List bucket names "
                "only, comma-separated (e.g. 'my-data,my-results')."
            )
        names.append(name)
    return sorted(set(names))


def _job_s3_policy(config: KnotConfig) -> dict:
    """Jobs read inputs and write outputs in knot's bucket and the user's buckets only."""
    extra = extra_buckets(config)
    bucket_arns = [get_att("Bucket", "Arn")]
    bucket_arns += [sub(f"arn:${{AWS::Partition}}:s3:::{name}") for name in extra]
    object_arns = [sub("${Bucket.Arn}/*")]
    object_arns += [sub(f"arn:${{AWS::Partition}}:s3:::{name}/*") for name in extra]
    statements = [
        {
            "Sid": "ListBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": bucket_arns,
        },
        {
            "Sid": "ReadWriteObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": object_arns,
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


# --- Network -------------------------------------------------------------------------


def _subnet(index: int, tags: Tags) -> dict:
    zone = {"Fn::Select": [index, {"Fn::GetAZs": ""}]}
    return {
        "Type": "AWS::EC2::Subnet",
        "Properties": {
            "VpcId": ref("Vpc"),
            "CidrBlock": _SUBNET_CIDRS[index],
            "AvailabilityZone": zone,
            # Public IPs let instances reach ECR, S3 and Logs without a NAT gateway.
            "MapPublicIpOnLaunch": True,
            "Tags": tags.as_list(),
        },
    }


def _route_association(subnet: str) -> dict:
    return {
        "Type": "AWS::EC2::SubnetRouteTableAssociation",
        "Properties": {"SubnetId": ref(subnet), "RouteTableId": ref("RouteTable")},
    }


def _network(tags: Tags) -> dict:
    return {
        "Vpc": {
            "Type": "AWS::EC2::VPC",
            "Properties": {
                "CidrBlock": _VPC_CIDR,
                "EnableDnsSupport": True,
                "EnableDnsHostnames": True,
                "Tags": tags.as_list(),
            },
        },
        "InternetGateway": {
            "Type": "AWS::EC2::InternetGateway",
            "Properties": {"Tags": tags.as_list()},
        },
        "GatewayAttachment": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {"VpcId": ref("Vpc"), "InternetGatewayId": ref("InternetGateway")},
        },
        "RouteTable": {
            "Type": "AWS::EC2::RouteTable",
            "Properties": {"VpcId": ref("Vpc"), "Tags": tags.as_list()},
        },
        "DefaultRoute": {
            "Type": "AWS::EC2::Route",
            # The route needs the gateway attached first; nothing in it says so.
            "DependsOn": "GatewayAttachment",
            "Properties": {
                "RouteTableId": ref("RouteTable"),
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": ref("InternetGateway"),
            },
        },
        "SubnetA": _subnet(0, tags),
        "SubnetB": _subnet(1, tags),
        "SubnetARoutes": _route_association("SubnetA"),
        "SubnetBRoutes": _route_association("SubnetB"),
        "SecurityGroup": _security_group(tags),
    }


def _security_group(tags: Tags) -> dict:
    # No ingress at all: jobs only call out (S3, ECR, Logs).
    return {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": "knot Batch instances: no inbound traffic",
            "VpcId": ref("Vpc"),
            "SecurityGroupEgress": [
                {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "all outbound"}
            ],
            "Tags": tags.as_list(),
        },
    }


# --- Storage, images, logs -----------------------------------------------------------


def _bucket(tags: Tags) -> dict:
    return {
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {"Rules": _lifecycle_rules()},
                "Tags": tags.as_list(),
            },
        },
        "BucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {"Bucket": ref("Bucket"), "PolicyDocument": _tls_only_policy()},
        },
    }


def _lifecycle_rules() -> list[dict]:
    return [
        {
            "Id": "expire-job-specs",
            "Status": "Enabled",
            "Prefix": SPEC_PREFIX,
            "ExpirationInDays": SPEC_EXPIRY_DAYS,
        },
        {
            "Id": "abort-incomplete-uploads",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": SPEC_EXPIRY_DAYS},
        },
    ]


def _tls_only_policy() -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [get_att("Bucket", "Arn"), sub("${Bucket.Arn}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def _ecr_lifecycle() -> str:
    rule = {
        "rulePriority": 1,
        "description": "expire untagged images",
        "selection": {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": UNTAGGED_IMAGE_DAYS,
        },
        "action": {"type": "expire"},
    }
    return json.dumps({"rules": [rule]}, sort_keys=True)


def _repository(config: KnotConfig, tags: Tags) -> dict:
    return {
        "Repository": {
            "Type": "AWS::ECR::Repository",
            "Properties": {
                "RepositoryName": repository_name(config),
                "ImageScanningConfiguration": {"ScanOnPush": True},
                "EncryptionConfiguration": {"EncryptionType": "AES256"},
                "LifecyclePolicy": {"LifecyclePolicyText": _ecr_lifecycle()},
                # On AWS, deleting the stack also deletes the images (moto ignores it,
                # and teardown empties the repository itself anyway).
                "EmptyOnDelete": True,
                "Tags": tags.as_list(),
            },
        }
    }


def _log_group(config: KnotConfig, tags: Tags) -> dict:
    return {
        "LogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": log_group_name(config),
                "RetentionInDays": LOG_RETENTION_DAYS,
                "Tags": tags.as_list(),
            },
        }
    }


# --- Compute -------------------------------------------------------------------------


def _launch_template(config: KnotConfig, tags: Tags) -> dict:
    root = {
        "DeviceName": "/dev/xvda",
        "Ebs": {
            "VolumeSize": config.root_volume_gb,
            "VolumeType": "gp3",
            "Encrypted": True,
            "DeleteOnTermination": True,
        },
    }
    return {
        "Type": "AWS::EC2::LaunchTemplate",
        "Properties": {
            "LaunchTemplateData": {
                "BlockDeviceMappings": [root],
                # IMDSv2 with one hop: containers cannot borrow the instance role.
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
            },
            "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags.as_list()}],
        },
    }


def _ec2_configuration(config: KnotConfig) -> list[dict]:
    image = {"ImageType": "ECS_AL2_NVIDIA" if config.has_gpu_instances else "ECS_AL2023"}
    if config.ami:
        image["ImageIdOverride"] = config.ami
    return [image]


def _compute_resources(config: KnotConfig, tags: Tags, spot: bool) -> dict:
    resources = {
        "Type": "SPOT" if spot else "EC2",
        "AllocationStrategy": "SPOT_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE",
        "MinvCpus": config.min_vcpus,
        "MaxvCpus": config.max_vcpus,
        "InstanceTypes": list(config.instance_types),
        "InstanceRole": get_att("InstanceProfile", "Arn"),
        "Subnets": [ref("SubnetA"), ref("SubnetB")],
        "SecurityGroupIds": [get_att("SecurityGroup", "GroupId")],
        "LaunchTemplate": {
            "LaunchTemplateId": ref("LaunchTemplate"),
            "Version": get_att("LaunchTemplate", "LatestVersionNumber"),
        },
        "Ec2Configuration": _ec2_configuration(config),
        "Tags": tags.as_map(),
    }
    if spot:
        resources["BidPercentage"] = config.spot_bid_percentage
        resources["SpotIamFleetRole"] = get_att("SpotFleetRole", "Arn")
    return resources


def _environment(config: KnotConfig, tags: Tags, spot: bool) -> dict:
    return {
        "Type": "AWS::Batch::ComputeEnvironment",
        # Instances need a route out before they can join the cluster.
        "DependsOn": ["DefaultRoute", "SubnetARoutes", "SubnetBRoutes"],
        "Properties": {
            "Type": "MANAGED",
            "State": "ENABLED",
            "ServiceRole": get_att("BatchServiceRole", "Arn"),
            "ComputeResources": _compute_resources(config, tags, spot),
            "Tags": tags.as_map(),
        },
    }


def _compute(config: KnotConfig, tags: Tags) -> dict:
    resources = {
        "LaunchTemplate": _launch_template(config, tags),
        "OnDemandEnvironment": _environment(config, tags, spot=False),
    }
    order = []
    if config.spot:
        resources["SpotEnvironment"] = _environment(config, tags, spot=True)
        order.append("SpotEnvironment")
    order.append("OnDemandEnvironment")
    resources["JobQueue"] = {
        "Type": "AWS::Batch::JobQueue",
        "Properties": {
            "Priority": 1,
            "State": "ENABLED",
            "ComputeEnvironmentOrder": [
                {"Order": i + 1, "ComputeEnvironment": ref(name)} for i, name in enumerate(order)
            ],
            "Tags": tags.as_map(),
        },
    }
    return resources


def _outputs() -> dict:
    values = {
        "BucketName": ref("Bucket"),
        "RepositoryName": ref("Repository"),
        "RepositoryUri": get_att("Repository", "RepositoryUri"),
        "JobQueueArn": ref("JobQueue"),
        "LogGroupName": ref("LogGroup"),
        "JobRoleArn": get_att("JobRole", "Arn"),
    }
    return {key: {"Value": values[key]} for key in OUTPUTS}
