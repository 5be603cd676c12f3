"""IAM policies for knot, as dicts (pure): the one a user running knot needs, and the
CloudFormation service role an administrator creates once, with the permissions boundary
every role of the stack then carries.

Why a service role: the stack holds IAM roles, and whoever may create roles with any policy
may make an administrator. So the runner's policy has no IAM write at all. It may only pass
the service role to CloudFormation, and the job role to Batch. CloudFormation, acting as the
service role, creates the roles, and even then only on the stack's IAM path
(``/knot/<stack>/``), only with knot's boundary attached, and only with the three AWS
managed policies knot uses. A template the runner writes itself therefore yields, at worst,
roles capped by the boundary: no IAM writes, passing only the stack's own roles.

Resources are named per partition and stack name (``render_*``); the partition comes from
the caller's session (``knot infra policy``). ``docs/iam-policy.json`` is the runner policy
for partition ``aws`` and stack ``knot``.
"""

from __future__ import annotations

from ..names import short_hash
from ..runtime.contract import KNOT_UID
from .lease import LEASE_KEY
from .secrets import secret_prefix
from .template.common import STACK_TAG, log_group_name, repository_name
from .template.iam import role_path

VERSION = "2012-10-17"
CFN_SERVICE = "cloudformation.amazonaws.com"
JOB_ROLE_SERVICES = ["batch.amazonaws.com", "ecs-tasks.amazonaws.com"]
INFRA_ROLE_SERVICES = ["batch.amazonaws.com", "ec2.amazonaws.com", "spotfleet.amazonaws.com"]
LINKED_ROLE_SERVICES = [
    "batch.amazonaws.com",
    "ecs.amazonaws.com",
    "spot.amazonaws.com",
    "spotfleet.amazonaws.com",
]
BOUNDARY_LINKED_ROLE_SERVICES = [*LINKED_ROLE_SERVICES, "autoscaling.amazonaws.com"]
# The AWS managed policies the template attaches (template._iam), and no others.
MANAGED_POLICIES = (
    "service-role/AWSBatchServiceRole",
    "service-role/AmazonEC2ContainerServiceforEC2Role",
    "service-role/AmazonEC2SpotFleetTaggingRole",
)
PLACEHOLDER_BUCKET = "your-storage-bucket"
# The user of every job definition knot registers (jobdef.py): a numeric uid, so Docker
# needs no /etc/passwd entry to resolve it and batch:User compares it as written.
JOB_USER = str(KNOT_UID)
_MAX_ROLE_NAME = 64


def _bounded_name(prefix: str, stack_name: str) -> str:
    """``<prefix><stack>``, or with the stack cut and a hash of it when that is too long
    for an IAM name (64 characters)."""
    name = f"{prefix}{stack_name}"
    if len(name) <= _MAX_ROLE_NAME:
        return name
    keep = _MAX_ROLE_NAME - len(prefix) - 17
    return f"{prefix}{stack_name[:keep]}-{short_hash(stack_name, 16)}"


def service_role_name(stack_name: str) -> str:
    return _bounded_name("knot-cfn-", stack_name)


def boundary_name(stack_name: str) -> str:
    return _bounded_name("knot-boundary-", stack_name)


def boundary_path(stack_name: str) -> str:
    return f"/knot/{stack_name}/"


def boundary_arn(service_role_arn: str, stack_name: str) -> str:
    """The boundary's ARN, in the service role's partition and account."""
    parts = service_role_arn.split(":")
    partition, account = parts[1], parts[4]
    path = boundary_path(stack_name)
    return f"arn:{partition}:iam::{account}:policy{path}{boundary_name(stack_name)}"


def _statement(sid: str, actions: list[str], resources, condition: dict | None = None) -> dict:
    statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _document(statements: list[dict]) -> dict:
    return {"Version": VERSION, "Statement": statements}


def _tagged(stack_name: str, key: str = "aws:ResourceTag") -> dict:
    return {"StringEquals": {f"{key}/{STACK_TAG}": stack_name}}


def _passed_to(services) -> dict:
    return {"StringEquals": {"iam:PassedToService": services}}


class Arns:
    """The ARNs of one stack's resources in one partition, as IAM patterns."""

    def __init__(self, partition: str, stack_name: str) -> None:
        self.p, self.stack = partition, stack_name

    def stack_arn(self) -> str:
        return f"arn:{self.p}:cloudformation:*:*:stack/{self.stack}/*"

    def role(self, name_or_path: str) -> str:
        return f"arn:{self.p}:iam::*:role{name_or_path}"

    def roles(self, kind: str) -> str:
        return self.role(role_path(self.stack, kind) + "*")

    def instance_profiles(self) -> str:
        return f"arn:{self.p}:iam::*:instance-profile{role_path(self.stack, 'infra')}*"

    def knot_bucket(self) -> str:
        # CloudFormation names the bucket <stack>-bucket-<random>, lower case, and cuts
        # long stack names to fit S3's 63 characters.
        lower = self.stack.lower()
        return self.bucket(f"{lower}-bucket-*" if len(lower) <= 30 else f"{lower[:30]}*")

    def bucket(self, name: str) -> str:
        return f"arn:{self.p}:s3:::{name}"

    def repository(self) -> str:
        return f"arn:{self.p}:ecr:*:*:repository/{repository_name(self.stack)}"

    def log_group(self) -> list[str]:
        group = f"arn:{self.p}:logs:*:*:log-group:{log_group_name(self.stack)}"
        return [group, f"{group}:*"]

    def secrets(self) -> str:
        return f"arn:{self.p}:secretsmanager:*:*:secret:{secret_prefix(self.stack)}*"

    def batch(self, kind: str, name: str = "*") -> str:
        return f"arn:{self.p}:batch:*:*:{kind}/{name}"


# --- the runner ----------------------------------------------------------------------


def runner_policy(partition: str, stack_name: str, buckets=(PLACEHOLDER_BUCKET,)) -> dict:
    """What ``snakemake --executor knot`` and ``knot infra`` need, with the stack made by
    the service role. ``buckets``: storage-prefix and --knot-buckets buckets the host
    reads, writes or creates (Snakemake's S3 storage plugin and ``ensure_bucket``)."""
    arns = Arns(partition, stack_name)
    return _document(
        [
            *_runner_stack(arns),
            *_runner_storage(arns, buckets),
            *_runner_images_and_logs(arns),
            *_runner_batch(arns),
            *_runner_secrets(arns),
            # --knot-subnets: the network is checked before the stack changes (network.py);
            # EC2's Describe actions take no resource.
            _statement(
                "CheckNetwork",
                [
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeInstanceTypeOfferings",
                ],
                "*",
            ),
        ]
    )


def _runner_secrets(arns: Arns) -> list[dict]:
    """A run keeps its envvars: values in one secret under the stack's prefix (secrets.py),
    deleted at its end; ListSecrets, which knot infra down uses, takes no resource."""
    actions = [
        "secretsmanager:CreateSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:DeleteSecret",
        "secretsmanager:TagResource",
    ]
    return [
        _statement("EnvvarsSecrets", actions, arns.secrets()),
        _statement("ListEnvvarsSecrets", ["secretsmanager:ListSecrets"], "*"),
    ]


def _runner_stack(arns: Arns) -> list[dict]:
    service_role = arns.role("/" + service_role_name(arns.stack))
    stack_actions = [
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:ListStackResources",
    ]
    return [
        _statement("KnotStack", stack_actions, arns.stack_arn()),
        _statement("FindServiceRole", ["iam:GetRole"], service_role),
        _statement("PassServiceRole", ["iam:PassRole"], service_role, _passed_to(CFN_SERVICE)),
        _statement(
            "PassJobRole", ["iam:PassRole"], arns.roles("job"), _passed_to(JOB_ROLE_SERVICES)
        ),
    ]


def _runner_storage(arns: Arns, buckets) -> list[dict]:
    statements = [
        _statement("KnotBucket", ["s3:ListBucket", "s3:GetBucketLocation"], arns.knot_bucket()),
        _statement("KnotObjects", _OBJECT_ACTIONS, arns.knot_bucket() + "/knot/*"),
        # The stack lease (lease.py): HeadObject, conditional PutObject and DeleteObject,
        # on its one key and nothing else outside knot/.
        _statement("StackLease", _LEASE_ACTIONS, f"{arns.knot_bucket()}/{LEASE_KEY}"),
    ]
    if buckets:
        names = sorted(set(buckets))
        statements += [
            _statement(
                "StorageBuckets",
                ["s3:ListBucket", "s3:GetBucketLocation", "s3:CreateBucket"],
                [arns.bucket(name) for name in names],
            ),
            _statement("StorageObjects", _OBJECT_ACTIONS, [arns.bucket(n) + "/*" for n in names]),
        ]
    return statements


_OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
_LEASE_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]


def _runner_images_and_logs(arns: Arns) -> list[dict]:
    image_actions = [
        "ecr:DescribeRepositories",
        "ecr:DescribeImages",
        "ecr:ListImages",
        "ecr:BatchDeleteImage",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
    ]
    return [
        _statement("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        _statement("RuleImages", image_actions, arns.repository()),
        _statement("JobLogs", ["logs:GetLogEvents"], arns.log_group()),
        _statement("FindLogGroups", ["logs:DescribeLogGroups"], "*"),
    ]


def _runner_batch(arns: Arns) -> list[dict]:
    definitions = arns.batch("job-definition", "knot-*")
    stack = arns.stack
    read = [
        "batch:DescribeComputeEnvironments",
        "batch:DescribeJobQueues",
        "batch:DescribeJobDefinitions",
        "batch:DescribeJobs",
        "batch:ListJobs",
    ]
    return [
        # Only definitions whose jobs run as knot's uid and unprivileged (jobdef.py states
        # both): a request that leaves either out has no value for the key, and is denied.
        _statement(
            "RegisterUnprivilegedJobDefinitions",
            ["batch:RegisterJobDefinition"],
            definitions,
            {"Bool": {"batch:Privileged": "false"}, "StringEquals": {"batch:User": JOB_USER}},
        ),
        _statement("DeregisterJobDefinitions", ["batch:DeregisterJobDefinition"], definitions),
        # Submitting needs the queue and the definition, both tagged with the stack.
        _statement(
            "SubmitToTheStacksQueue",
            ["batch:SubmitJob"],
            [arns.batch("job-queue"), definitions],
            _tagged(stack),
        ),
        # Tags on a new job or definition: only with this stack's tag among them.
        _statement(
            "TagNewJobs",
            ["batch:TagResource"],
            [arns.batch("job"), definitions],
            _tagged(stack, "aws:RequestTag"),
        ),
        _statement(
            "TerminateTheStacksJobs", ["batch:TerminateJob"], arns.batch("job"), _tagged(stack)
        ),
        _statement("BatchReadOnly", read, "*"),
        # The instance type each job ran on, for the run record's costs (aws/hosts.py).
        # Batch names its ECS clusters after compute environments whose names
        # CloudFormation makes up, so no name pattern pins them to the stack; the call
        # only reads instance attributes.
        _statement(
            "InstanceTypes",
            ["ecs:DescribeContainerInstances"],
            f"arn:{arns.p}:ecs:*:*:cluster/*",
        ),
        # Spot prices over a run, for its costs (report/pricing.py); a read of public
        # prices, which allows no resource but "*".
        _statement("SpotPrices", ["ec2:DescribeSpotPriceHistory"], "*"),
    ]


# --- the service role and its boundary -------------------------------------------------


def service_role_trust() -> dict:
    principal = {"Service": CFN_SERVICE}
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    return _document([statement])


def service_role_policy(partition: str, stack_name: str, account: str = "*") -> dict:
    """What CloudFormation needs to create, update and delete the stack, and no way to
    make a role without knot's boundary or with another managed policy."""
    arns = Arns(partition, stack_name)
    return _document(
        [
            *_service_iam(arns, account),
            *_service_network(arns),
            *_service_storage_and_images(arns),
            *_service_batch(arns),
        ]
    )


def _boundary_of(arns: Arns, account: str) -> str:
    return (
        f"arn:{arns.p}:iam::{account}:policy{boundary_path(arns.stack)}{boundary_name(arns.stack)}"
    )


def _service_iam(arns: Arns, account: str) -> list[dict]:
    roles = [arns.roles("infra"), arns.roles("job")]
    bounded = {"StringEquals": {"iam:PermissionsBoundary": _boundary_of(arns, account)}}
    managed = [f"arn:{arns.p}:iam::aws:policy/{name}" for name in MANAGED_POLICIES]
    attach = {"StringEquals": {**bounded["StringEquals"], "iam:PolicyARN": managed}}
    manage = [
        "iam:GetRole",
        "iam:DeleteRole",
        "iam:TagRole",
        "iam:UntagRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:GetRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:DetachRolePolicy",
        "iam:DeleteRolePolicy",
    ]
    profiles = [
        "iam:CreateInstanceProfile",
        "iam:DeleteInstanceProfile",
        "iam:GetInstanceProfile",
        "iam:TagInstanceProfile",
        "iam:AddRoleToInstanceProfile",
        "iam:RemoveRoleFromInstanceProfile",
    ]
    linked = {"StringEquals": {"iam:AWSServiceName": LINKED_ROLE_SERVICES}}
    return [
        _statement(
            "CreateRolesOnlyWithTheBoundary",
            ["iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"],
            roles,
            bounded,
        ),
        _statement("AttachOnlyKnotsManagedPolicies", ["iam:AttachRolePolicy"], roles, attach),
        _statement("ManageTheStacksRoles", manage, roles),
        _statement("InstanceProfiles", profiles, arns.instance_profiles()),
        _statement(
            "PassInfraRoles", ["iam:PassRole"], arns.roles("infra"), _passed_to(INFRA_ROLE_SERVICES)
        ),
        _statement("ServiceLinkedRoles", ["iam:CreateServiceLinkedRole"], "*", linked),
    ]


_EC2_CREATE = [
    "ec2:CreateVpc",
    "ec2:CreateSubnet",
    "ec2:CreateInternetGateway",
    "ec2:AttachInternetGateway",
    "ec2:CreateRouteTable",
    "ec2:CreateRoute",
    "ec2:AssociateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion",
    "ec2:ModifyVpcAttribute",
    "ec2:ModifySubnetAttribute",
]
_EC2_CHANGE_TAGGED = [
    "ec2:DeleteVpc",
    "ec2:DeleteSubnet",
    "ec2:DeleteInternetGateway",
    "ec2:DetachInternetGateway",
    "ec2:DeleteRouteTable",
    "ec2:DeleteRoute",
    "ec2:DisassociateRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:DeleteLaunchTemplate",
    "ec2:CreateTags",
    "ec2:DeleteTags",
]


def _service_network(arns: Arns) -> list[dict]:
    describe = ["ec2:Describe*"]
    # Tags go on with the create call; tagging anything else would let a template adopt
    # a resource knot did not make, and then delete it.
    on_create = {"StringEquals": {"ec2:CreateAction": [a.split(":")[1] for a in _EC2_CREATE]}}
    return [
        _statement("CreateNetwork", _EC2_CREATE, "*"),
        _statement("TagOnCreate", ["ec2:CreateTags"], "*", on_create),
        _statement("ChangeOnlyTheStacksNetwork", _EC2_CHANGE_TAGGED, "*", _tagged(arns.stack)),
        _statement("ReadNetwork", describe, "*"),
    ]


def _service_storage_and_images(arns: Arns) -> list[dict]:
    bucket = [
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:ListBucket",
        "s3:GetBucket*",
        "s3:PutBucket*",
        "s3:DeleteBucketPolicy",
        "s3:GetEncryptionConfiguration",
        "s3:PutEncryptionConfiguration",
        "s3:GetLifecycleConfiguration",
        "s3:PutLifecycleConfiguration",
    ]
    repository = [
        "ecr:CreateRepository",
        "ecr:DeleteRepository",
        "ecr:DescribeRepositories",
        "ecr:PutLifecyclePolicy",
        "ecr:GetLifecyclePolicy",
        "ecr:DeleteLifecyclePolicy",
        "ecr:PutImageScanningConfiguration",
        "ecr:PutImageTagMutability",
        "ecr:TagResource",
        "ecr:UntagResource",
        "ecr:ListTagsForResource",
    ]
    logs = [
        "logs:CreateLogGroup",
        "logs:DeleteLogGroup",
        "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy",
        "logs:TagResource",
        "logs:UntagResource",
        "logs:TagLogGroup",
        "logs:ListTagsForResource",
    ]
    return [
        _statement("StackBucket", bucket, arns.knot_bucket()),
        _statement("StackRepository", repository, arns.repository()),
        _statement("StackLogGroup", logs, arns.log_group()),
        _statement("ReadLogGroups", ["logs:DescribeLogGroups"], "*"),
    ]


def _service_batch(arns: Arns) -> list[dict]:
    kinds = [arns.batch("compute-environment"), arns.batch("job-queue")]
    create = ["batch:CreateComputeEnvironment", "batch:CreateJobQueue", "batch:TagResource"]
    change = [
        "batch:UpdateComputeEnvironment",
        "batch:DeleteComputeEnvironment",
        "batch:UpdateJobQueue",
        "batch:DeleteJobQueue",
        "batch:UntagResource",
    ]
    read = ["batch:DescribeComputeEnvironments", "batch:DescribeJobQueues"]
    return [
        _statement("CreateTaggedBatch", create, kinds, _tagged(arns.stack, "aws:RequestTag")),
        _statement("ChangeOnlyTheStacksBatch", change, kinds, _tagged(arns.stack)),
        _statement("ReadBatch", read, "*"),
    ]


def boundary_policy(partition: str, stack_name: str) -> dict:
    """The most any role of the stack may do, whatever policy it holds: what the three
    managed policies and the job role's own policies (its buckets, its stack's envvars
    secrets) use, with no IAM write and passing only the stack's own roles. The managed
    policies' services stay whole (``ec2:*``, ...): AWS adds actions to those policies,
    and a narrower cap would deny Batch what its own policy grants it."""
    arns = Arns(partition, stack_name)
    services = ["ec2:*", "ecs:*", "autoscaling:*", "logs:*"]
    images = ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:BatchCheckLayerAvailability"]
    images.append("ecr:GetDownloadUrlForLayer")
    objects = ["s3:ListBucket", "s3:GetBucketLocation", *_OBJECT_ACTIONS[:2]]
    objects.append("s3:AbortMultipartUpload")
    read_iam = ["iam:GetRole", "iam:GetInstanceProfile", "iam:ListInstanceProfiles"]
    # Batch's service role creates these when the account lacks them (AWSBatchServiceRole).
    linked = {"StringEquals": {"iam:AWSServiceName": BOUNDARY_LINKED_ROLE_SERVICES}}
    return _document(
        [
            _statement("ComputeAndLogs", services, "*"),
            _statement("PullImages", images, "*"),
            _statement("JobData", objects, "*"),
            # envvars: jobs read their run's values (template/iam.py, runtime/envvars.py).
            _statement("ReadEnvvarsSecrets", ["secretsmanager:GetSecretValue"], arns.secrets()),
            _statement("ReadIam", read_iam, "*"),
            _statement(
                "PassOnlyTheStacksRoles", ["iam:PassRole"], arns.role(f"/knot/{arns.stack}/*")
            ),
            _statement("ServiceLinkedRoles", ["iam:CreateServiceLinkedRole"], "*", linked),
        ]
    )
