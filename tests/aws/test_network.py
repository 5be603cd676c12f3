"""--knot-subnets and --knot-security-groups: a stack in an existing network (no VPC, no
public IPs of knot's), and the network refused before any stack change when knot cannot
launch into it."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.aws.network import check_network, type_patterns
from snakemake_executor_knot.aws.stack import StackOps, ensure_infra
from snakemake_executor_knot.config.settings import ExecutorSettings, KnotConfig, parse_settings
from snakemake_executor_knot.errors import ConfigError

from .test_policy import RUNNER, allowed


def _network(ec2, cidr: str = "10.20.0.0/16", zones=("us-east-1a", "us-east-1b")):
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    base = cidr.rsplit(".", 2)[0]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"{base}.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(zones)
    ]
    group = ec2.create_security_group(GroupName=f"lab-{cidr}", Description="lab", VpcId=vpc)
    return vpc, tuple(subnets), (group["GroupId"],)


def _config(subnets, groups, **extra) -> KnotConfig:
    return KnotConfig(stack_name="lab-net", subnets=subnets, security_groups=groups, **extra)


def test_a_stack_in_an_existing_network_makes_no_vpc_and_launches_there(clients):
    _, subnets, groups = _network(clients.ec2)
    infra = ensure_infra(clients, _config(subnets, groups))
    kinds = {kind for kind, _ in StackOps(clients, "lab-net").resources().values()}
    assert not kinds & {"AWS::EC2::VPC", "AWS::EC2::InternetGateway", "AWS::EC2::Subnet",
                        "AWS::EC2::SecurityGroup", "AWS::EC2::Route"}  # fmt: skip
    environments = clients.batch.describe_compute_environments()["computeEnvironments"]
    resources = [
        e["computeResources"] for e in environments if "lab-net" in e["computeEnvironmentName"]
    ]
    assert resources and all(r["subnets"] == list(subnets) for r in resources)
    assert all(r["securityGroupIds"] == list(groups) for r in resources)
    assert infra.job_queue_arn


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other-vpc", "must all be in one VPC"),
        ("group-elsewhere", "belong to another VPC than the subnets"),
        ("public", "give every instance a public IP"),
        ("no-zone", r"no instance type of compute class 'default' \(c7g\) is offered in the zone"),
        ("missing", "--knot-subnets:"),
    ],
)
def test_a_network_knot_cannot_use_is_refused_before_any_stack_change(clients, case, message):
    ec2 = clients.ec2
    _, subnets, groups = _network(ec2)
    _, other_subnets, other_groups = _network(ec2, "10.30.0.0/16")
    extra = {}
    if case == "other-vpc":
        subnets = (subnets[0], other_subnets[0])
    elif case == "group-elsewhere":
        groups = other_groups
    elif case == "public":
        ec2.modify_subnet_attribute(SubnetId=subnets[1], MapPublicIpOnLaunch={"Value": True})
    elif case == "no-zone":  # us-east-1e offers no Graviton type
        _, subnets, groups = _network(ec2, "10.40.0.0/16", zones=("us-east-1e",))
        extra = {"instance_types": ("c7g",)}
    elif case == "missing":
        subnets = ("subnet-0123456789abcdef0",)
    with pytest.raises(ConfigError, match=message):
        ensure_infra(clients, _config(subnets, groups, **extra))
    assert StackOps(clients, "lab-net").describe() is None  # nothing was created


def test_the_same_zone_with_types_it_offers_is_accepted(clients):
    _, subnets, groups = _network(clients.ec2, "10.50.0.0/16", zones=("us-east-1a",))
    check_network(clients, _config(subnets, groups, instance_types=("c7g",)))


def test_the_flags_go_together_and_take_ids_only():
    with pytest.raises(ConfigError, match="go together"):
        parse_settings(ExecutorSettings(subnets="subnet-0123456789abcdef0"))
    with pytest.raises(ConfigError, match="'vpc-1' is not a subnet id"):
        parse_settings(ExecutorSettings(subnets="vpc-1", security_groups="sg-01234567"))
    config = parse_settings(
        ExecutorSettings(subnets="subnet-01234567, subnet-01234567", security_groups="sg-89abcdef")
    )
    assert config.subnets == ("subnet-01234567",) and config.security_groups == ("sg-89abcdef",)


def test_instance_type_patterns():
    assert type_patterns(("m6i", "c6i.large")) == ["m6i.*", "c6i.large"]
    assert "c5.*" in type_patterns(("optimal",))


@pytest.mark.parametrize(
    "action",
    ["ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstanceTypeOfferings"],
)
def test_the_runner_may_check_the_network(action):
    assert allowed(RUNNER, action, "*")
    assert not allowed(RUNNER, "ec2:ModifySubnetAttribute", "*")
