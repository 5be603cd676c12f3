"""An existing network (``--knot-subnets``, ``--knot-security-groups``), checked before
any stack change: the subnets exist, share one VPC, give instances no public IP and sit
in availability zones that offer the instance types; the security groups exist in that
VPC. Every value read back from EC2 is only compared, never used to build a request."""

from __future__ import annotations

import fnmatch

from botocore.exceptions import BotoCoreError, ClientError

from ..config.settings import KnotConfig
from ..errors import ConfigError, aws_error
from .clients import Clients

# What Batch may launch for its keywords, as EC2 instance type patterns: 'optimal' picks
# from the c, m and r families (older generations, and since late 2025 those of
# default_x86_64); default_arm64 from Graviton's.
_KEYWORDS = {
    "optimal": ("c4.*", "m4.*", "r4.*", "c5.*", "m5.*", "r5.*", "c6i.*", "m6i.*", "r6i.*", "c7i.*"),
    "default_x86_64": ("c6i.*", "m6i.*", "r6i.*", "c7i.*"),
    "default_arm64": ("c6g.*", "m6g.*", "r6g.*", "c7g.*"),
}
_BotoErrors = (BotoCoreError, ClientError)


def type_patterns(instance_types: tuple[str, ...]) -> list[str]:
    """EC2 filter values for the allowed instance types: a family 'm6i' is 'm6i.*'."""
    patterns: list[str] = []
    for name in instance_types:
        found = _KEYWORDS.get(name) or ((name,) if "." in name else (f"{name}.*",))
        patterns += [p for p in found if p not in patterns]
    return patterns


def check_network(clients: Clients, config: KnotConfig) -> None:
    """Refuse, before the stack is touched, subnets or groups knot cannot launch into."""
    if not config.subnets:
        return
    subnets = _described(clients, "subnets", config.subnets)
    vpcs = {str(s.get("VpcId")) for s in subnets}
    if len(vpcs) != 1:
        listed = ", ".join(f"{s.get('SubnetId')} in {s.get('VpcId')}" for s in subnets)
        raise ConfigError(
            f"--knot-subnets must all be in one VPC, but they are in {len(vpcs)}: {listed}. "
            "Give the subnets of one VPC."
        )
    public = [str(s.get("SubnetId")) for s in subnets if s.get("MapPublicIpOnLaunch")]
    if public:
        raise ConfigError(
            f"--knot-subnets: {', '.join(public)} give every instance a public IP "
            "(MapPublicIpOnLaunch). knot runs in an existing network without public IPs: "
            "give private subnets (with a NAT gateway or VPC endpoints for S3, ECR and "
            "CloudWatch Logs), or leave --knot-subnets out for a VPC of knot's own."
        )
    vpc = vpcs.pop()
    groups = _described(clients, "security_groups", config.security_groups)
    elsewhere = [str(g.get("GroupId")) for g in groups if g.get("VpcId") != vpc]
    if elsewhere:
        raise ConfigError(
            f"--knot-security-groups: {', '.join(elsewhere)} belong to another VPC than the "
            f"subnets ({vpc}). Give security groups of {vpc}."
        )
    _check_zones(clients, config, subnets)


def _described(clients: Clients, kind: str, ids: tuple[str, ...]) -> list[dict]:
    flag = "--knot-subnets" if kind == "subnets" else "--knot-security-groups"
    try:
        if kind == "subnets":
            found = clients.ec2.describe_subnets(SubnetIds=list(ids))["Subnets"]
        else:
            found = clients.ec2.describe_security_groups(GroupIds=list(ids))["SecurityGroups"]
    except ClientError as exc:
        if "NotFound" in str(exc.response.get("Error", {}).get("Code", "")):
            raise ConfigError(
                f"{flag}: {exc.response['Error'].get('Message', exc)} in region "
                f"{clients.region}. Check the ids and the region."
            ) from exc
        raise aws_error(exc, f"describing {flag.removeprefix('--knot-')}", service="ec2") from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"describing {flag.removeprefix('--knot-')}", service="ec2") from exc
    return found


def _check_zones(clients: Clients, config: KnotConfig, subnets: list[dict]) -> None:
    """Each subnet's zone must offer at least one type of every compute class."""
    zones = sorted({str(s.get("AvailabilityZone")) for s in subnets})
    for klass in config.compute_classes:
        patterns = type_patterns(klass.instance_types)
        offered = _zones_offering(clients, zones, patterns)
        idle = [s for s in subnets if s.get("AvailabilityZone") not in offered]
        if idle:
            named = ", ".join(f"{s.get('SubnetId')} ({s.get('AvailabilityZone')})" for s in idle)
            raise ConfigError(
                f"--knot-subnets: no instance type of compute class '{klass.name}' "
                f"({', '.join(klass.instance_types)}) is offered in the zone of {named}. "
                "Give subnets in other zones, or other instance types."
            )


def _zones_offering(clients: Clients, zones: list[str], patterns: list[str]) -> set[str]:
    """The zones with an offering that matches a pattern; matched here, so that no
    wildcard semantics of EC2's filters are relied on."""
    offered: set[str] = set()
    try:
        paginator = clients.ec2.get_paginator("describe_instance_type_offerings")
        pages = paginator.paginate(
            LocationType="availability-zone", Filters=[{"Name": "location", "Values": zones}]
        )
        for page in pages:
            for offering in page.get("InstanceTypeOfferings", []):
                name = str(offering.get("InstanceType", ""))
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                    offered.add(str(offering.get("Location")))
    except _BotoErrors as exc:
        raise aws_error(exc, "asking which zones offer the instance types", service="ec2") from exc
    return offered
