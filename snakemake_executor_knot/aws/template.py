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

Findings of the checkov linter that knot accepts are justified on the resource itself, in
checkov's ``Metadata: checkov: skip`` form (see ``SKIPS``); tests/aws runs checkov.
"""

from __future__ import annotations

import base64
import json

from ..config.classes import ComputeClass, logical_prefix
from ..config.settings import KnotConfig, parse_buckets
from ..names import short_hash
from ..runtime.contract import KNOT_UID, SPEC_FOLDER, USAGE_FOLDER

# Job specs live under this prefix of knot's bucket and expire after SPEC_EXPIRY_DAYS, as do
# the usage documents jobs write next to them (runtime/contract.py).
SPEC_PREFIX = f"knot/{SPEC_FOLDER}/"
USAGE_PREFIX = f"knot/{USAGE_FOLDER}/"
SPEC_EXPIRY_DAYS = 7
# Local-mode copies of the user's files live here; they expire after
# --knot-files-expiry-days (a later run uploads again what it still needs).
FILES_PREFIX = "knot/files/"
LOG_RETENTION_DAYS = 30
UNTAGGED_IMAGE_DAYS = 1
# Tagged images kept in the repository, newest pushes first. Tags are content hashes and
# the stack is shared by workflows whose rules it never sees, so a lifecycle policy (whose
# rules select fixed tag prefixes) cannot count per rule: the bound is per repository.
MAX_IMAGES = 1000
STACK_TAG = "knot:stack"
HASH_OUTPUT = "TemplateHash"
# The settings the stack was deployed with (JSON), compared by later runs (stack.py).
SETTINGS_OUTPUT = "Settings"
METADATA_ADDRESS = "169.254.169.254"
# The stack's outputs, and the field of ``stack.Infra`` each one fills.
OUTPUTS = {
    "BucketName": "bucket",
    "RepositoryName": "repository_name",
    "RepositoryUri": "repository_uri",
    "JobQueueArn": "job_queue_arn",
    "LogGroupName": "log_group",
    "JobRoleArn": "job_role_arn",
}

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


def resource(kind: str, properties: dict, **extra) -> dict:
    """One template resource; ``extra`` holds DependsOn, Metadata and the like."""
    return {"Type": kind, "Properties": properties, **extra}


def checkov_skips(*ids: str) -> dict:
    """checkov's skip comments for a resource: one reason per finding, from SKIPS."""
    return {"checkov": {"skip": [{"id": i, "comment": SKIPS[i]} for i in ids]}}


# Each checkov finding knot accepts, and why, in one sentence.
SKIPS = {
    "CKV_AWS_18": "Access logs need a second bucket; this one holds only transient copies and "
    "specs, and CloudTrail data events audit it account-wide if wanted.",
    "CKV_AWS_21": "Versioning would keep every overwritten copy and spec forever, defeating "
    "the lifecycle expiry, and the contents are reproducible by re-running the workflow.",
    "CKV_AWS_136": "Images are encrypted with AES256; a customer-managed KMS key would cost a "
    "key per stack and add no control that the repository's IAM policies lack.",
    "CKV_AWS_158": "Logs are encrypted by CloudWatch by default; a customer-managed KMS key "
    "would need a key policy for the logs service and add no control IAM lacks.",
}


def build_template(config: KnotConfig, boundary: str | None = None) -> dict:
    """The whole stack: IAM, network, bucket, repository, log group, compute, queue.

    ``boundary`` is the ARN of the permissions boundary every role gets when the stack is
    made through knot's CloudFormation service role (see ``policy``)."""
    tags = Tags(config)
    resources = {
        **_iam(config, tags, boundary),
        **_network(tags),
        **_bucket(config, tags),
        **_repository(config, tags),
        **_log_group(config, tags),
        **_compute(config, tags),
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"knot: shared AWS Batch infrastructure (stack {config.stack_name})",
        "Resources": resources,
        "Outputs": _outputs(config),
    }


def recorded_settings(config: KnotConfig) -> dict:
    """The settings the template is built from, as deployed in the ``Settings`` output; a
    later run compares them with its own (``stack.py``)."""
    recorded = {
        "instance_types": list(config.instance_types),
        "min_vcpus": config.min_vcpus,
        "max_vcpus": config.max_vcpus,
        "spot": config.spot,
        "spot_bid_percentage": config.spot_bid_percentage,
        "ami": config.ami,
        "root_volume_gb": config.root_volume_gb,
        "tags": config.tag_dict,
        "files_expiry_days": config.files_expiry_days,
        "buckets": extra_buckets(config),
    }
    # Only with classes besides default, so a stack made before classes keeps its template.
    if config.classes:
        recorded["classes"] = {c.name: c.as_record() for c in config.classes}
    return recorded


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


def repository_name(stack_name: str) -> str:
    return f"{stack_name.lower()}-rules"


def log_group_name(stack_name: str) -> str:
    return f"/knot/{stack_name}"


def role_path(stack_name: str, kind: str) -> str:
    """The IAM path of the stack's roles: ``job`` for the job role, ``infra`` for the rest.
    Paths, unlike generated role names, hold the whole stack name, so a policy can name
    exactly this stack's roles, and the job role apart from the others."""
    return f"/knot/{stack_name}/{kind}/"


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


def _iam(config: KnotConfig, tags: Tags, boundary: str | None) -> dict:
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


# --- Network -------------------------------------------------------------------------


def _subnet(index: int, tags: Tags) -> dict:
    zone = {"Fn::Select": [index, {"Fn::GetAZs": ""}]}
    return resource(
        "AWS::EC2::Subnet",
        {
            "VpcId": ref("Vpc"),
            "CidrBlock": _SUBNET_CIDRS[index],
            "AvailabilityZone": zone,
            # Public IPs let instances reach ECR, S3 and Logs without a NAT gateway.
            "MapPublicIpOnLaunch": True,
            "Tags": tags.as_list(),
        },
    )


def _route_association(subnet: str) -> dict:
    return resource(
        "AWS::EC2::SubnetRouteTableAssociation",
        {"SubnetId": ref(subnet), "RouteTableId": ref("RouteTable")},
    )


def _network(tags: Tags) -> dict:
    vpc = {
        "CidrBlock": _VPC_CIDR,
        "EnableDnsSupport": True,
        "EnableDnsHostnames": True,
        "Tags": tags.as_list(),
    }
    route = {
        "RouteTableId": ref("RouteTable"),
        "DestinationCidrBlock": "0.0.0.0/0",
        "GatewayId": ref("InternetGateway"),
    }
    return {
        "Vpc": resource("AWS::EC2::VPC", vpc),
        "InternetGateway": resource("AWS::EC2::InternetGateway", {"Tags": tags.as_list()}),
        "GatewayAttachment": resource(
            "AWS::EC2::VPCGatewayAttachment",
            {"VpcId": ref("Vpc"), "InternetGatewayId": ref("InternetGateway")},
        ),
        "RouteTable": resource(
            "AWS::EC2::RouteTable", {"VpcId": ref("Vpc"), "Tags": tags.as_list()}
        ),
        # The route needs the gateway attached first; nothing in it says so.
        "DefaultRoute": resource("AWS::EC2::Route", route, DependsOn="GatewayAttachment"),
        "SubnetA": _subnet(0, tags),
        "SubnetB": _subnet(1, tags),
        "SubnetARoutes": _route_association("SubnetA"),
        "SubnetBRoutes": _route_association("SubnetB"),
        "SecurityGroup": _security_group(tags),
    }


def _security_group(tags: Tags) -> dict:
    # No ingress at all: jobs only call out (S3, ECR, Logs).
    egress = {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "all outbound"}
    return resource(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "knot Batch instances: no inbound traffic",
            "VpcId": ref("Vpc"),
            "SecurityGroupEgress": [egress],
            "Tags": tags.as_list(),
        },
    )


# --- Storage, images, logs -----------------------------------------------------------


def _bucket(config: KnotConfig, tags: Tags) -> dict:
    encryption = {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    bucket = {
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [encryption]},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {"Rules": _lifecycle_rules(config)},
        "Tags": tags.as_list(),
    }
    return {
        "Bucket": resource(
            "AWS::S3::Bucket", bucket, Metadata=checkov_skips("CKV_AWS_18", "CKV_AWS_21")
        ),
        "BucketPolicy": resource(
            "AWS::S3::BucketPolicy", {"Bucket": ref("Bucket"), "PolicyDocument": _tls_only()}
        ),
    }


def _lifecycle_rules(config: KnotConfig) -> list[dict]:
    return [
        {
            "Id": "expire-job-specs",
            "Status": "Enabled",
            "Prefix": SPEC_PREFIX,
            "ExpirationInDays": SPEC_EXPIRY_DAYS,
        },
        {
            "Id": "expire-usage-documents",
            "Status": "Enabled",
            "Prefix": USAGE_PREFIX,
            "ExpirationInDays": SPEC_EXPIRY_DAYS,
        },
        {
            "Id": "expire-local-copies",
            "Status": "Enabled",
            "Prefix": FILES_PREFIX,
            "ExpirationInDays": config.files_expiry_days,
        },
        {
            "Id": "abort-incomplete-uploads",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": SPEC_EXPIRY_DAYS},
        },
    ]


def _tls_only() -> dict:
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


def ecr_lifecycle_rules() -> list[dict]:
    """Untagged layers go after a day; of the tagged images, the newest MAX_IMAGES stay.
    ECR evaluates a ``tagStatus: any`` rule last, so it must have the highest priority."""
    untagged = {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": UNTAGGED_IMAGE_DAYS,
    }
    bounded = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": MAX_IMAGES}
    return [
        {
            "rulePriority": 1,
            "description": "expire untagged images",
            "selection": untagged,
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"keep the newest {MAX_IMAGES} images",
            "selection": bounded,
            "action": {"type": "expire"},
        },
    ]


def _repository(config: KnotConfig, tags: Tags) -> dict:
    text = json.dumps({"rules": ecr_lifecycle_rules()}, sort_keys=True)
    repository = {
        "RepositoryName": repository_name(config.stack_name),
        "ImageScanningConfiguration": {"ScanOnPush": True},
        # Tags are content hashes: a tag never has to point at other content.
        "ImageTagMutability": "IMMUTABLE",
        "EncryptionConfiguration": {"EncryptionType": "AES256"},
        "LifecyclePolicy": {"LifecyclePolicyText": text},
        # On AWS, deleting the stack also deletes the images (moto ignores it,
        # and teardown empties the repository itself anyway).
        "EmptyOnDelete": True,
        "Tags": tags.as_list(),
    }
    return {
        "Repository": resource(
            "AWS::ECR::Repository", repository, Metadata=checkov_skips("CKV_AWS_136")
        )
    }


def _log_group(config: KnotConfig, tags: Tags) -> dict:
    group = {
        "LogGroupName": log_group_name(config.stack_name),
        "RetentionInDays": LOG_RETENTION_DAYS,
        "Tags": tags.as_list(),
    }
    return {
        "LogGroup": resource("AWS::Logs::LogGroup", group, Metadata=checkov_skips("CKV_AWS_158"))
    }


# --- Compute -------------------------------------------------------------------------

# Jobs on EC2 run in the host's network namespace (Batch's only mode for EC2 jobs), so the
# IMDSv2 hop limit does not keep them from the instance role. The rule drops the job
# user's packets to the metadata service; the ECS agent (root, host network) keeps it, and
# the job role's credentials come from the agent's endpoint (169.254.170.2), not from it.
# DOCKER-USER covers containers on a bridge, should a job definition ever use one; Docker
# keeps a DOCKER-USER chain that exists before it starts. A cloud-boothook runs on every
# boot, before the ECS agent starts jobs, so the rules survive reboots.
_BOOTHOOK = f"""#cloud-boothook
#!/bin/sh
iptables --insert OUTPUT 1 --destination {METADATA_ADDRESS}/32 \
  --match owner --uid-owner {KNOT_UID} --jump DROP
iptables --new-chain DOCKER-USER 2>/dev/null || true
iptables --insert DOCKER-USER 1 --destination {METADATA_ADDRESS}/32 --jump DROP
"""
_MIME_BOUNDARY = "==KNOT=="


def user_data() -> str:
    """The launch template's user data, base64: Batch merges MIME multi-part user data
    with its own, so the boothook goes in one part of that form."""
    text = (
        'Content-Type: multipart/mixed; boundary="' + _MIME_BOUNDARY + '"\n'
        "MIME-Version: 1.0\n\n"
        f"--{_MIME_BOUNDARY}\n"
        'Content-Type: text/cloud-boothook; charset="us-ascii"\n\n'
        f"{_BOOTHOOK}\n"
        f"--{_MIME_BOUNDARY}--\n"
    )
    return base64.b64encode(text.encode()).decode()


def _launch_template(klass: ComputeClass, tags: Tags) -> dict:
    root = {
        "DeviceName": "/dev/xvda",
        "Ebs": {
            "VolumeSize": klass.root_volume_gb,
            "VolumeType": "gp3",
            "Encrypted": True,
            "DeleteOnTermination": True,
        },
    }
    data = {
        "BlockDeviceMappings": [root],
        # IMDSv2 with one hop keeps bridged containers out; user_data() keeps jobs out.
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        "UserData": user_data(),
    }
    return resource(
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateData": data,
            "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags.as_list()}],
        },
    )


def _ec2_configuration(klass: ComputeClass, ami: str | None) -> list[dict]:
    # GPU classes need the ECS GPU AMI (NVIDIA driver and runtime); --knot-ami, meant for
    # CPU instances, applies to the other classes only.
    if klass.has_gpus:
        return [{"ImageType": "ECS_AL2_NVIDIA"}]
    image = {"ImageType": "ECS_AL2023"}
    if ami:
        image["ImageIdOverride"] = ami
    return [image]


def _compute_resources(
    config: KnotConfig, klass: ComputeClass, tags: Tags, spot: bool, prefix: str
) -> dict:
    resources = {
        "Type": "SPOT" if spot else "EC2",
        "AllocationStrategy": "SPOT_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE",
        "MinvCpus": klass.min_vcpus,
        "MaxvCpus": klass.max_vcpus,
        "InstanceTypes": list(klass.instance_types),
        "InstanceRole": get_att("InstanceProfile", "Arn"),
        "Subnets": [ref("SubnetA"), ref("SubnetB")],
        "SecurityGroupIds": [get_att("SecurityGroup", "GroupId")],
        "LaunchTemplate": {
            "LaunchTemplateId": ref(f"{prefix}LaunchTemplate"),
            "Version": get_att(f"{prefix}LaunchTemplate", "LatestVersionNumber"),
        },
        "Ec2Configuration": _ec2_configuration(klass, config.ami),
        "Tags": tags.as_map(),
    }
    if spot:
        resources["BidPercentage"] = config.spot_bid_percentage
        resources["SpotIamFleetRole"] = get_att("SpotFleetRole", "Arn")
    return resources


def _environment(config: KnotConfig, klass: ComputeClass, tags: Tags, spot: bool) -> dict:
    prefix = logical_prefix(klass.name)
    environment = {
        "Type": "MANAGED",
        "State": "ENABLED",
        "ServiceRole": get_att("BatchServiceRole", "Arn"),
        "ComputeResources": _compute_resources(config, klass, tags, spot, prefix),
        "Tags": tags.as_map(),
    }
    # Instances need a route out before they can join the cluster.
    needs = ["DefaultRoute", "SubnetARoutes", "SubnetBRoutes"]
    return resource("AWS::Batch::ComputeEnvironment", environment, DependsOn=needs)


def _class_compute(config: KnotConfig, klass: ComputeClass, tags: Tags) -> dict:
    """One class's launch template, environments and queue, under ids of its own: adding
    or changing a class leaves every other class's resources as they are."""
    prefix = logical_prefix(klass.name)
    resources = {
        f"{prefix}LaunchTemplate": _launch_template(klass, tags),
        f"{prefix}OnDemandEnvironment": _environment(config, klass, tags, spot=False),
    }
    order = []
    if klass.spot:
        resources[f"{prefix}SpotEnvironment"] = _environment(config, klass, tags, spot=True)
        order.append(f"{prefix}SpotEnvironment")
    order.append(f"{prefix}OnDemandEnvironment")
    queue = {
        "Priority": 1,
        "State": "ENABLED",
        "ComputeEnvironmentOrder": [
            {"Order": i + 1, "ComputeEnvironment": ref(name)} for i, name in enumerate(order)
        ],
        "Tags": tags.as_map(),
    }
    resources[f"{prefix}JobQueue"] = resource("AWS::Batch::JobQueue", queue)
    return resources


def _compute(config: KnotConfig, tags: Tags) -> dict:
    resources = {}
    for klass in config.compute_classes:
        resources.update(_class_compute(config, klass, tags))
    return resources


def class_queue_output(name: str) -> str:
    """The output holding a class's queue ARN; the default class's predates classes."""
    return f"{logical_prefix(name)}JobQueueArn"


def _outputs(config: KnotConfig) -> dict:
    values = {
        "BucketName": ref("Bucket"),
        "RepositoryName": ref("Repository"),
        "RepositoryUri": get_att("Repository", "RepositoryUri"),
        "JobQueueArn": ref("JobQueue"),
        "LogGroupName": ref("LogGroup"),
        "JobRoleArn": get_att("JobRole", "Arn"),
    }
    outputs = {key: {"Value": values[key]} for key in OUTPUTS}
    for klass in config.classes:
        queue = ref(f"{logical_prefix(klass.name)}JobQueue")
        outputs[class_queue_output(klass.name)] = {"Value": queue}
    settings = json.dumps(recorded_settings(config), sort_keys=True, separators=(",", ":"))
    outputs[SETTINGS_OUTPUT] = {"Value": settings}
    return outputs
