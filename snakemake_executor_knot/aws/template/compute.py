"""The template's compute, one set per compute class: a launch template (its user data
keeps jobs away from the instance metadata service), Batch compute environments (spot
first when the class allows it, then on-demand), the class's job queue and, for a spot
class, a queue of its on-demand environment alone.
"""

from __future__ import annotations

import base64

from ...config.classes import ComputeClass, logical_prefix
from ...config.settings import KnotConfig
from ...runtime.cache import HOST_PATH as CACHE_HOST_PATH
from ...runtime.contract import KNOT_UID
from .common import Tags, get_att, ref, resource

METADATA_ADDRESS = "169.254.169.254"
ROOT_UID = 0

# Jobs on EC2 run in the host's network namespace (Batch's only mode for EC2 jobs), so the
# IMDSv2 hop limit does not keep them from the instance role. The rule drops the packets
# of every user but root to the metadata service: knot's jobs run as KNOT_UID, but an
# image's other users (or a process that changes uid) must not get through either. The ECS
# agent and the instance's own services run as root and keep it; the job role's
# credentials come from the agent's endpoint (169.254.170.2), not from it.
# DOCKER-USER covers containers on a bridge, should a job definition ever use one; Docker
# keeps a DOCKER-USER chain that exists before it starts. A cloud-boothook runs on every
# boot, before the ECS agent starts jobs, so the rules survive reboots.
# It also makes the instance's input cache folder (runtime/cache.py), on the root volume,
# which every job mounts: knot's uid owns it, so the jobs, never the host, write there.
_BOOTHOOK = f"""#cloud-boothook
#!/bin/sh
iptables --insert OUTPUT 1 --destination {METADATA_ADDRESS}/32 \
  --match owner ! --uid-owner {ROOT_UID} --jump DROP
iptables --new-chain DOCKER-USER 2>/dev/null || true
iptables --insert DOCKER-USER 1 --destination {METADATA_ADDRESS}/32 --jump DROP
mkdir -p {CACHE_HOST_PATH}
chown {KNOT_UID}:{KNOT_UID} {CACHE_HOST_PATH}
chmod 0700 {CACHE_HOST_PATH}
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


def _network(config: KnotConfig) -> dict:
    """Where instances launch: the given subnets and groups, else knot's own VPC's."""
    if config.subnets:
        return {"Subnets": list(config.subnets), "SecurityGroupIds": list(config.security_groups)}
    return {
        "Subnets": [ref("SubnetA"), ref("SubnetB")],
        "SecurityGroupIds": [get_att("SecurityGroup", "GroupId")],
    }


def _instances(
    config: KnotConfig, klass: ComputeClass, tags: Tags, spot: bool, prefix: str
) -> dict:
    """An environment's ComputeResources: the instances it may launch, and how."""
    resources = {
        "Type": "SPOT" if spot else "EC2",
        "AllocationStrategy": "SPOT_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE",
        "MinvCpus": klass.min_vcpus,
        "MaxvCpus": klass.max_vcpus,
        "InstanceTypes": list(klass.instance_types),
        "InstanceRole": get_att("InstanceProfile", "Arn"),
        **_network(config),
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
        "ComputeResources": _instances(config, klass, tags, spot, prefix),
        "Tags": tags.as_map(),
    }
    if config.subnets:  # an existing network: its routes are there already
        return resource("AWS::Batch::ComputeEnvironment", environment)
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
    if klass.spot:
        # Where a job goes once spot reclaimed it --knot-spot-retries times, and where a
        # rule whose reclaims cost more than on-demand would starts (run/spot.py).
        on_demand = {**queue, "ComputeEnvironmentOrder": [_first(f"{prefix}OnDemandEnvironment")]}
        resources[f"{prefix}OnDemandJobQueue"] = resource("AWS::Batch::JobQueue", on_demand)
    return resources


def _first(environment: str) -> dict:
    return {"Order": 1, "ComputeEnvironment": ref(environment)}


def compute_resources(config: KnotConfig, tags: Tags) -> dict:
    resources = {}
    for klass in config.compute_classes:
        resources.update(_class_compute(config, klass, tags))
    return resources


def class_queue_output(name: str) -> str:
    """The output holding a class's queue ARN; the default class's predates classes."""
    return f"{logical_prefix(name)}JobQueueArn"


def on_demand_queue_output(name: str) -> str:
    """The output holding a spot class's on-demand-only queue ARN."""
    return f"{logical_prefix(name)}OnDemandJobQueueArn"
