"""The template's network: a VPC with two public subnets, an internet gateway and its
route, and a security group that lets nothing in.
"""

from __future__ import annotations

from .common import Tags, ref, resource

_VPC_CIDR = "10.70.0.0/16"
_SUBNET_CIDRS = ("10.70.0.0/18", "10.70.64.0/18")


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


def network_resources(tags: Tags) -> dict:
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
