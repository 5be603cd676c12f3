"""Unit tier: the CloudFormation template as a dict, and cfn-lint on the rendered text."""

from __future__ import annotations

import base64
import email
import json
import shlex
import subprocess
from pathlib import Path

import pytest
from cfnlint.api import lint

from snakemake_executor_knot.aws.template.assembly import (
    HASH_OUTPUT,
    OUTPUTS,
    SETTINGS_OUTPUT,
    build_template,
    render,
    stamp,
    template_hash,
)
from snakemake_executor_knot.aws.template.common import SKIPS
from snakemake_executor_knot.aws.template.storage import FILES_PREFIX, MAX_IMAGES, SPEC_PREFIX
from snakemake_executor_knot.config.settings import KnotConfig, with_classes
from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.image.dockerfile import ImageSpec, render_dockerfile
from snakemake_executor_knot.runtime.contract import KNOT_UID

CUSTOM = KnotConfig(
    stack_name="knot-test",
    instance_types=("c5", "m5.2xlarge"),
    min_vcpus=2,
    max_vcpus=64,
    spot_bid_percentage=70,
    ami="ami-0123456789abcdef0",
    root_volume_gb=100,
    buckets=("my-data", "s3://my-results/"),
    tags=(("team", "neuro"), ("project", "hcp")),
)


CLASSES = "gpu=g5,g4dn:ondemand:maxvcpus=32; bigdisk=m6i:500GB"
CLASSED = with_classes(CUSTOM, CLASSES)


def resources(config: KnotConfig) -> dict:
    return build_template(config)["Resources"]


def of_type(config: KnotConfig, kind: str) -> dict:
    return {k: v for k, v in resources(config).items() if v["Type"] == kind}


def props(config: KnotConfig, logical_id: str) -> dict:
    return resources(config)[logical_id]["Properties"]


def test_security_group_allows_no_inbound_traffic():
    groups = of_type(CUSTOM, "AWS::EC2::SecurityGroup")
    assert list(groups) == ["SecurityGroup"]
    assert "SecurityGroupIngress" not in groups["SecurityGroup"]["Properties"]
    assert not of_type(CUSTOM, "AWS::EC2::SecurityGroupIngress")


def test_network_has_public_subnets_in_two_zones():
    subnets = of_type(CUSTOM, "AWS::EC2::Subnet")
    zones = [s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for s in subnets.values()]
    assert sorted(zones) == [0, 1]
    route = props(CUSTOM, "DefaultRoute")
    assert route["DestinationCidrBlock"] == "0.0.0.0/0"
    assert route["GatewayId"] == {"Ref": "InternetGateway"}
    associated = {
        a["Properties"]["SubnetId"]["Ref"]
        for a in of_type(CUSTOM, "AWS::EC2::SubnetRouteTableAssociation").values()
    }
    assert associated == set(subnets)


def test_bucket_policy_denies_requests_without_tls():
    policy = props(CUSTOM, "BucketPolicy")
    assert policy["Bucket"] == {"Ref": "Bucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["Bucket", "Arn"]},
        {"Fn::Sub": "${Bucket.Arn}/*"},
    ]


def test_bucket_is_private_encrypted_and_expires_job_specs():
    bucket = props(CUSTOM, "Bucket")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    expiring = [r for r in bucket["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert expiring == [
        {
            "Id": "expire-job-specs",
            "Status": "Enabled",
            "Prefix": "knot/specs/",
            "ExpirationInDays": 7,
        },
        {
            "Id": "expire-usage-documents",
            "Status": "Enabled",
            "Prefix": "knot/usage/",
            "ExpirationInDays": 7,
        },
        {
            "Id": "expire-local-copies",
            "Status": "Enabled",
            "Prefix": "knot/files/",
            "ExpirationInDays": 30,
        },
    ]
    assert SPEC_PREFIX == "knot/specs/"


def _job_role_statements(config: KnotConfig, name: str = "knot-job-s3") -> list[dict]:
    policies = {p["PolicyName"]: p for p in props(config, "JobRole")["Policies"]}
    assert set(policies) == {"knot-job-s3", "knot-job-secrets"}
    return policies[name]["PolicyDocument"]["Statement"]


def test_job_role_reads_only_its_own_stacks_envvars_secrets():
    (statement,) = _job_role_statements(KnotConfig(stack_name="knot-dev"), "knot-job-secrets")
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    assert statement["Resource"] == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
            ":secret:knot/knot-dev/*"
        }
    ]


def test_job_role_reaches_only_knots_bucket_and_the_configured_ones():
    statements = _job_role_statements(CUSTOM)
    listed, specs, files, deny = statements
    assert listed["Resource"] == [
        {"Fn::GetAtt": ["Bucket", "Arn"]},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::my-data"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::my-results"},
    ]
    assert files["Resource"] == [
        {"Fn::Sub": "${Bucket.Arn}/knot/files/*"},
        {"Fn::Sub": "${Bucket.Arn}/knot/usage/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::my-data/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::my-results/*"},
    ]
    actions = [a for s in statements for a in s["Action"]]
    assert all(a.startswith("s3:") and "*" not in a for a in actions)


def test_jobs_read_their_specs_but_can_never_write_them():
    listed, specs, files, deny = _job_role_statements(KnotConfig())
    spec_objects = [{"Fn::Sub": "${Bucket.Arn}/knot/specs/*"}]
    assert specs == {
        "Sid": "ReadSpecs",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": spec_objects,
    }
    assert deny["Effect"] == "Deny" and deny["Resource"] == spec_objects
    assert {"s3:PutObject", "s3:DeleteObject"} <= set(deny["Action"])
    # No Allow reaches the specs with a write: the writable prefixes are others.
    assert all("knot/specs" not in r["Fn::Sub"] for r in files["Resource"])


def test_job_role_without_extra_buckets_has_only_knots_bucket():
    listed, _, files, _ = _job_role_statements(KnotConfig())
    assert listed["Resource"] == [{"Fn::GetAtt": ["Bucket", "Arn"]}]
    assert files["Resource"] == [
        {"Fn::Sub": "${Bucket.Arn}/knot/files/*"},
        {"Fn::Sub": "${Bucket.Arn}/knot/usage/*"},
    ]


@pytest.mark.parametrize("bad", ["My_Bucket", "s3://b", "bucket/with/prefix", "*"])
def test_bad_extra_bucket_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="--knot-buckets"):
        build_template(KnotConfig(buckets=(bad,)))


def test_roles_trust_the_right_services():
    trusted = {
        name: role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        for name, role in of_type(CUSTOM, "AWS::IAM::Role").items()
    }
    assert trusted == {
        "BatchServiceRole": {"Service": "batch.amazonaws.com"},
        "InstanceRole": {"Service": "ec2.amazonaws.com"},
        "JobRole": {"Service": "ecs-tasks.amazonaws.com"},
        "SpotFleetRole": {"Service": "spotfleet.amazonaws.com"},
    }
    assert props(CUSTOM, "InstanceProfile")["Roles"] == [{"Ref": "InstanceRole"}]


def test_queue_tries_spot_first_then_on_demand():
    order = props(CUSTOM, "JobQueue")["ComputeEnvironmentOrder"]
    assert order == [
        {"Order": 1, "ComputeEnvironment": {"Ref": "SpotEnvironment"}},
        {"Order": 2, "ComputeEnvironment": {"Ref": "OnDemandEnvironment"}},
    ]
    spot = props(CUSTOM, "SpotEnvironment")["ComputeResources"]
    assert spot["Type"] == "SPOT"
    assert spot["BidPercentage"] == 70
    assert spot["AllocationStrategy"] == "SPOT_CAPACITY_OPTIMIZED"
    assert spot["SpotIamFleetRole"] == {"Fn::GetAtt": ["SpotFleetRole", "Arn"]}


def test_without_spot_there_is_only_on_demand():
    config = KnotConfig(spot=False)
    assert list(of_type(config, "AWS::Batch::ComputeEnvironment")) == ["OnDemandEnvironment"]
    assert "SpotFleetRole" not in resources(config)
    assert props(config, "JobQueue")["ComputeEnvironmentOrder"] == [
        {"Order": 1, "ComputeEnvironment": {"Ref": "OnDemandEnvironment"}}
    ]


@pytest.mark.parametrize("logical_id", ["SpotEnvironment", "OnDemandEnvironment"])
def test_instance_settings_flow_into_both_environments(logical_id):
    compute = props(CUSTOM, logical_id)["ComputeResources"]
    assert compute["InstanceTypes"] == ["c5", "m5.2xlarge"]
    assert (compute["MinvCpus"], compute["MaxvCpus"]) == (2, 64)
    assert compute["Ec2Configuration"] == [
        {"ImageType": "ECS_AL2023", "ImageIdOverride": "ami-0123456789abcdef0"}
    ]
    assert compute["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "LaunchTemplate"}
    assert compute["SecurityGroupIds"] == [{"Fn::GetAtt": ["SecurityGroup", "GroupId"]}]
    assert compute["Subnets"] == [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]


def test_root_volume_size_goes_into_the_launch_template():
    data = props(CUSTOM, "LaunchTemplate")["LaunchTemplateData"]
    (device,) = data["BlockDeviceMappings"]
    assert device["Ebs"]["VolumeSize"] == 100
    assert device["Ebs"]["Encrypted"] is True


def test_default_ami_is_ecs_optimised_and_gpu_classes_get_the_nvidia_image():
    default = props(KnotConfig(), "OnDemandEnvironment")["ComputeResources"]
    assert default["Ec2Configuration"] == [{"ImageType": "ECS_AL2023"}]
    # --knot-ami is for CPU instances: a GPU class keeps the ECS GPU image.
    gpu = props(CLASSED, "ClassGpuOnDemandEnvironment")["ComputeResources"]
    assert gpu["Ec2Configuration"] == [{"ImageType": "ECS_AL2_NVIDIA"}]
    bigdisk = props(CLASSED, "ClassBigdiskSpotEnvironment")["ComputeResources"]
    assert bigdisk["Ec2Configuration"][0]["ImageIdOverride"] == "ami-0123456789abcdef0"


def test_each_class_has_its_own_launch_template_environments_and_queue():
    queues = of_type(CLASSED, "AWS::Batch::JobQueue")
    assert sorted(queues) == [
        "ClassBigdiskJobQueue",
        "ClassBigdiskOnDemandJobQueue",  # a spot class's queue of on-demand alone
        "ClassGpuJobQueue",  # :ondemand, so its own queue is on demand already
        "JobQueue",
        "OnDemandJobQueue",
    ]
    assert sorted(of_type(CLASSED, "AWS::Batch::ComputeEnvironment")) == [
        "ClassBigdiskOnDemandEnvironment",
        "ClassBigdiskSpotEnvironment",
        "ClassGpuOnDemandEnvironment",  # :ondemand, so no spot environment
        "OnDemandEnvironment",
        "SpotEnvironment",
    ]
    gpu = props(CLASSED, "ClassGpuOnDemandEnvironment")["ComputeResources"]
    assert (gpu["InstanceTypes"], gpu["MinvCpus"], gpu["MaxvCpus"]) == (["g5", "g4dn"], 0, 32)
    assert gpu["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "ClassGpuLaunchTemplate"}
    assert props(CLASSED, "ClassGpuJobQueue")["ComputeEnvironmentOrder"] == [
        {"Order": 1, "ComputeEnvironment": {"Ref": "ClassGpuOnDemandEnvironment"}}
    ]
    disk = props(CLASSED, "ClassBigdiskLaunchTemplate")["LaunchTemplateData"]
    assert disk["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 500
    bigdisk = props(CLASSED, "ClassBigdiskSpotEnvironment")["ComputeResources"]
    assert (bigdisk["InstanceTypes"], bigdisk["MaxvCpus"]) == (["m6i"], 64)


def test_each_spot_class_has_an_on_demand_queue_of_its_on_demand_environment_alone():
    assert props(CLASSED, "OnDemandJobQueue")["ComputeEnvironmentOrder"] == [
        {"Order": 1, "ComputeEnvironment": {"Ref": "OnDemandEnvironment"}}
    ]
    assert props(CLASSED, "ClassBigdiskOnDemandJobQueue")["ComputeEnvironmentOrder"] == [
        {"Order": 1, "ComputeEnvironment": {"Ref": "ClassBigdiskOnDemandEnvironment"}}
    ]
    outputs = build_template(CLASSED)["Outputs"]
    assert outputs["OnDemandJobQueueArn"] == {"Value": {"Ref": "OnDemandJobQueue"}}
    assert outputs["ClassBigdiskOnDemandJobQueueArn"] == {
        "Value": {"Ref": "ClassBigdiskOnDemandJobQueue"}
    }
    assert "ClassGpuOnDemandJobQueueArn" not in outputs
    # Tagged with the stack as every queue is: the runner may submit only to those.
    assert props(CLASSED, "OnDemandJobQueue")["Tags"] == props(CLASSED, "JobQueue")["Tags"]


def test_each_class_queue_is_an_output_and_the_classes_are_recorded():
    outputs = build_template(CLASSED)["Outputs"]
    assert outputs["ClassGpuJobQueueArn"] == {"Value": {"Ref": "ClassGpuJobQueue"}}
    assert outputs["ClassBigdiskJobQueueArn"] == {"Value": {"Ref": "ClassBigdiskJobQueue"}}
    recorded = json.loads(outputs[SETTINGS_OUTPUT]["Value"])["classes"]
    assert recorded["gpu"] == {
        "instance_types": ["g5", "g4dn"],
        "spot": False,
        "root_volume_gb": 100,
        "max_vcpus": 32,
    }
    # Without classes nothing is recorded, so a stack made before classes keeps its hash.
    assert "classes" not in json.loads(build_template(CUSTOM)["Outputs"][SETTINGS_OUTPUT]["Value"])


@pytest.mark.parametrize(
    ("before", "after"),
    [(CUSTOM, CLASSED), (CLASSED, with_classes(CUSTOM, CLASSES + "; extra=r6i:ondemand"))],
    ids=["first-class", "third-class"],
)
def test_adding_a_class_leaves_every_existing_resource_as_it_was(before, after):
    """CloudFormation updates in place, and replaces nothing, when each logical id keeps
    its type and properties: the old classes' queues and their jobs are untouched."""
    old, new = resources(before), resources(after)
    assert {key: new[key] for key in old} == old
    added = {new[key]["Type"] for key in set(new) - set(old)}
    assert added == {
        "AWS::EC2::LaunchTemplate",
        "AWS::Batch::ComputeEnvironment",
        "AWS::Batch::JobQueue",
    }


def test_repository_scans_on_push_and_bounds_its_images():
    repo = props(CUSTOM, "Repository")
    assert repo["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert repo["RepositoryName"] == "knot-test-rules"
    assert repo["ImageTagMutability"] == "IMMUTABLE"
    untagged, bounded = json.loads(repo["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert untagged["selection"]["tagStatus"] == "untagged"
    assert untagged["action"] == {"type": "expire"}
    assert bounded["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": MAX_IMAGES,
    }
    # ECR wants the catch-all rule last, i.e. with the highest priority number.
    assert bounded["rulePriority"] > untagged["rulePriority"]


def test_local_copies_expire_after_the_configured_days():
    rules = props(KnotConfig(files_expiry_days=3), "Bucket")["LifecycleConfiguration"]["Rules"]
    (rule,) = [r for r in rules if r.get("Prefix") == FILES_PREFIX]
    assert rule["ExpirationInDays"] == 3
    assert FILES_PREFIX == "knot/files/"


def test_log_group_has_retention():
    group = props(CUSTOM, "LogGroup")
    assert group["LogGroupName"] == "/knot/knot-test"
    assert group["RetentionInDays"] > 0


def test_every_taggable_resource_carries_user_tags_and_the_stack_tag():
    expected = {"team": "neuro", "project": "hcp", "knot:stack": "knot-test"}
    tagged = 0
    for res in resources(CUSTOM).values():
        p = res["Properties"]
        tags = p.get("Tags")
        if res["Type"] == "AWS::EC2::LaunchTemplate":
            tags = p["TagSpecifications"][0]["Tags"]
        if tags is None:
            assert res["Type"] in _UNTAGGABLE, res["Type"]
            continue
        tagged += 1
        as_dict = tags if isinstance(tags, dict) else {t["Key"]: t["Value"] for t in tags}
        assert as_dict == expected, res["Type"]
        if res["Type"] == "AWS::Batch::ComputeEnvironment":
            assert p["ComputeResources"]["Tags"] == expected  # the instances themselves
    assert tagged == 18  # the on-demand queue included


_UNTAGGABLE = {
    "AWS::IAM::InstanceProfile",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::S3::BucketPolicy",
}


def test_outputs_are_what_infra_reads():
    outputs = build_template(CUSTOM)["Outputs"]
    # Besides the settings: the default class's on-demand queue (it uses spot).
    assert set(outputs) - set(OUTPUTS) == {SETTINGS_OUTPUT, "OnDemandJobQueueArn"}
    assert set(OUTPUTS) == {
        "BucketName",
        "RepositoryName",
        "RepositoryUri",
        "JobQueueArn",
        "LogGroupName",
        "JobRoleArn",
    }
    assert outputs["JobQueueArn"]["Value"] == {"Ref": "JobQueue"}


def test_template_hash_is_stable_and_follows_every_setting():
    assert template_hash(build_template(CUSTOM)) == template_hash(build_template(CUSTOM))
    variants = [
        KnotConfig(),
        KnotConfig(max_vcpus=128),
        KnotConfig(spot=False),
        KnotConfig(buckets=("other",)),
        KnotConfig(tags=(("a", "b"),)),
        KnotConfig(root_volume_gb=50),
    ]
    hashes = {template_hash(build_template(c)) for c in variants}
    assert len(hashes) == len(variants)
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in hashes)


def test_stamp_adds_the_hash_as_an_output_without_changing_resources():
    template = build_template(CUSTOM)
    stamped, digest = stamp(template)
    assert digest == template_hash(template)
    assert stamped["Outputs"][HASH_OUTPUT] == {"Value": digest}
    assert stamped["Resources"] == template["Resources"]
    assert HASH_OUTPUT not in template["Outputs"]


@pytest.mark.parametrize(
    "config",
    [
        CUSTOM,
        KnotConfig(spot=False),
        with_classes(KnotConfig(buckets=("x12",)), "gpu=p3:90GB"),
        KnotConfig(subnets=("subnet-0123456789abcdef0",), security_groups=("sg-01234567",)),
    ],
    ids=["spot", "on-demand-only", "classes", "existing-network"],
)
def test_cfn_lint_finds_no_errors(config):
    stamped, _ = stamp(build_template(config))
    matches = lint(render(stamped), regions=["us-east-1"])
    errors = [str(m) for m in matches if m.rule.severity == "error"]
    assert errors == []


def test_cfn_lint_does_catch_a_broken_template():
    """Guards the test above: the linter is really looking at the template."""
    template = build_template(KnotConfig())
    template["Resources"]["Vpc"]["Properties"]["NoSuchProperty"] = 1
    matches = lint(render(template), regions=["us-east-1"])
    assert any(m.rule.severity == "error" for m in matches)


# --- checkov ------------------------------------------------------------------------------

# checkov's pins clash with Snakemake's (dpath), so scripts/setup-venv gives it its own venv.
CHECKOV_PYTHON = Path(__file__).resolve().parents[2] / ".venv-checkov" / "bin" / "python"


def _checkov(template: dict, tmp_path) -> dict:
    """checkov's CloudFormation results for a template: {"failed": [...], "skipped": [...]}
    of (check id, resource) pairs. --skip-download keeps it off the network."""
    if not CHECKOV_PYTHON.exists():
        pytest.skip(
            f"checkov is not installed in {CHECKOV_PYTHON.parent.parent} (scripts/setup-venv)"
        )
    path = tmp_path / "template.json"
    path.write_text(render(template))
    command = [str(CHECKOV_PYTHON), "-m", "checkov.main", "--file", str(path)]
    command += ["--framework", "cloudformation", "--skip-download", "--output", "json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    results = json.loads(done.stdout)["results"]
    return {
        kind: sorted((c["check_id"], c["resource"]) for c in results[f"{kind}_checks"])
        for kind in ("failed", "skipped")
    }


@pytest.mark.parametrize(
    "config", [CUSTOM, KnotConfig(spot=False), CLASSED], ids=["spot", "on-demand", "classes"]
)
def test_checkov_finds_nothing_but_the_justified_skips(config, tmp_path):
    stamped, _ = stamp(build_template(config))
    found = _checkov(stamped, tmp_path)
    assert found["failed"] == []
    skipped = {check for check, _ in found["skipped"]}
    assert skipped == set(SKIPS)  # every justification answers a real finding
    for check, reason in SKIPS.items():
        assert reason.endswith(".") and reason.count(". ") == 0, check  # one sentence


def test_checkov_does_catch_what_the_template_fixed(tmp_path):
    """Guards the test above: without the immutable tags and the skip comments, checkov
    reports the findings the issue lists."""
    template = build_template(KnotConfig())
    for res in template["Resources"].values():
        res.pop("Metadata", None)
    template["Resources"]["Repository"]["Properties"].pop("ImageTagMutability")
    failed = {check for check, _ in _checkov(template, tmp_path)["failed"]}
    assert {"CKV_AWS_18", "CKV_AWS_21", "CKV_AWS_51", "CKV_AWS_136", "CKV_AWS_158"} <= failed


# --- instance metadata ----------------------------------------------------------------


def _user_data_parts(config: KnotConfig) -> list:
    data = props(config, "LaunchTemplate")["LaunchTemplateData"]
    message = email.message_from_bytes(base64.b64decode(data["UserData"]))
    assert message.is_multipart()  # Batch merges only MIME multi-part user data
    return message.get_payload()


def _owner_matches(rule: list[str], uid: int) -> bool:
    """Whether iptables' owner match of ``rule`` takes a packet of ``uid``."""
    at = rule.index("--uid-owner")
    negated = rule[at - 1] == "!"
    return (int(rule[at + 1]) == uid) != negated


def test_jobs_cannot_reach_the_instance_metadata_service():
    (part,) = _user_data_parts(CUSTOM)
    assert part.get_content_type() == "text/cloud-boothook"  # runs on every boot
    lines = " ".join(part.get_payload().split("\\\n")).splitlines()
    rules = [shlex.split(line) for line in lines if line.startswith("iptables --insert")]
    by_chain = {rule[2]: rule for rule in rules}
    job_user = by_chain["OUTPUT"]  # host networking: the job's packets leave from OUTPUT
    assert job_user[job_user.index("--destination") + 1] == "169.254.169.254/32"
    assert job_user[-2:] == ["--jump", "DROP"]
    # Every user but root is dropped: knot's jobs, and any other uid an image or a
    # process inside it may use; root (the ECS agent, the instance's services) is not.
    for uid in (KNOT_UID, 1001, 65534, 2**31):
        assert _owner_matches(job_user, uid), uid
    assert not _owner_matches(job_user, 0)
    bridged = by_chain["DOCKER-USER"]
    assert bridged[bridged.index("--destination") + 1] == "169.254.169.254/32"
    assert bridged[-2:] == ["--jump", "DROP"]
    # The ECS agent runs as root on the host network and needs the service: the only
    # OUTPUT rule leaves root alone.
    assert [rule[2] for rule in rules].count("OUTPUT") == 1
    options = props(CUSTOM, "LaunchTemplate")["LaunchTemplateData"]["MetadataOptions"]
    assert options == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}


def test_jobs_run_as_the_user_the_instances_block():
    dockerfile = render_dockerfile(ImageSpec(rule="r", base_image="knot-base:py3.11"))
    assert f"--uid {KNOT_UID}" in dockerfile
    users = [line for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users[-1] == "USER knot"  # the last USER is the one the job runs as


def test_roles_live_on_the_stacks_path_and_take_the_boundary():
    boundary = "arn:aws:iam::123456789012:policy/knot/knot-test/knot-knot-test-boundary"
    roles = {
        k: v["Properties"]
        for k, v in build_template(CUSTOM, boundary)["Resources"].items()
        if v["Type"] in ("AWS::IAM::Role", "AWS::IAM::InstanceProfile")
    }
    paths = {name: p["Path"] for name, p in roles.items()}
    assert paths.pop("JobRole") == "/knot/knot-test/job/"
    assert set(paths.values()) == {"/knot/knot-test/infra/"}
    assert {p.get("PermissionsBoundary") for n, p in roles.items() if n != "InstanceProfile"} == {
        boundary
    }
    assert all("PermissionsBoundary" not in p for p in of_type(CUSTOM, "AWS::IAM::Role").values())


def test_every_instance_prepares_the_input_cache_folder_for_knots_uid():
    (part,) = _user_data_parts(CUSTOM)
    lines = part.get_payload().splitlines()
    assert "mkdir -p /var/lib/knot-cache" in lines
    assert f"chown {KNOT_UID}:{KNOT_UID} /var/lib/knot-cache" in lines
    assert "chmod 0700 /var/lib/knot-cache" in lines
