"""``knot infra policy`` and ``knot infra service-role [--create]``: the IAM side of the
stack, printed for the caller's partition and stack name, or created by an administrator."""

from __future__ import annotations

import argparse
import json

from ..aws.clients import make_clients
from ..aws.policy import (
    boundary_name,
    boundary_path,
    boundary_policy,
    runner_policy,
    service_role_name,
    service_role_policy,
    service_role_trust,
)
from ..aws.service_role import INLINE_POLICY, create_service_role, partition_of
from ..aws.template.iam import extra_buckets
from ..config.settings import KnotConfig


def _policy(args: argparse.Namespace, config: KnotConfig) -> int:
    partition = partition_of(make_clients(config))
    buckets = extra_buckets(KnotConfig(buckets=tuple(args.bucket))) if args.bucket else None
    policy = runner_policy(partition, config.stack_name, *([buckets] if buckets else []))
    print(json.dumps(policy, indent=2))
    return 0


def service_role_documents(partition: str, stack_name: str) -> dict:
    """What 'knot infra service-role' prints: the role, its policy and its boundary."""
    return {
        "RoleName": service_role_name(stack_name),
        "AssumeRolePolicyDocument": service_role_trust(),
        "InlinePolicyName": INLINE_POLICY,
        "InlinePolicy": service_role_policy(partition, stack_name),
        "Boundary": {
            "PolicyName": boundary_name(stack_name),
            "Path": boundary_path(stack_name),
            "PolicyDocument": boundary_policy(partition, stack_name),
        },
    }


def _service_role(args: argparse.Namespace, config: KnotConfig) -> int:
    clients = make_clients(config)
    if not args.create:
        print(
            json.dumps(service_role_documents(partition_of(clients), config.stack_name), indent=2)
        )
        return 0
    for line in create_service_role(clients, config.stack_name):
        print(line)
    print(
        f"knot now creates stack '{config.stack_name}' through this role; give its users "
        f"the policy 'knot --stack-name {config.stack_name} infra policy' prints."
    )
    return 0


def register(infra_commands) -> None:
    """Add ``policy`` and ``service-role`` under ``knot infra``."""
    policy = infra_commands.add_parser(
        "policy", help="print the IAM policy a user running knot needs (no IAM writes)"
    )
    policy.add_argument(
        "--bucket",
        action="append",
        default=[],
        help="a storage-prefix or --buckets bucket the host uses (repeatable; default: none)",
    )
    policy.set_defaults(handler=_policy)
    role = infra_commands.add_parser(
        "service-role",
        help="print (or, for an administrator, --create) the role CloudFormation creates "
        "the stack as",
    )
    role.add_argument(
        "--create", action="store_true", help="create or update it now (default: only print it)"
    )
    role.set_defaults(handler=_service_role)
