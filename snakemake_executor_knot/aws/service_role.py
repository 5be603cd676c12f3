"""Find or create the CloudFormation service role knot's stack is made through (the
policies themselves are built in ``policy``)."""

from __future__ import annotations

import dataclasses
import json

from botocore.exceptions import BotoCoreError, ClientError

from ..config.settings import KnotConfig
from ..errors import ConfigError, aws_error, error_code
from .clients import Clients, caller_identity
from .policy import (
    boundary_name,
    boundary_path,
    boundary_policy,
    service_role_name,
    service_role_policy,
    service_role_trust,
)

INLINE_POLICY = "knot-stack"
_DENIED = {"AccessDenied", "AccessDeniedException"}
_BotoErrors = (BotoCoreError, ClientError)


def partition_of(clients: Clients) -> str:
    """The session's partition (aws, aws-cn, aws-us-gov, ...), from its region."""
    return clients.session.get_partition_for_region(clients.region)


def find_service_role(clients: Clients, config: KnotConfig) -> KnotConfig:
    """``config`` with ``cfn_role`` set: --knot-cfn-role if given, else the stack's
    service role when it exists. Without one, CloudFormation acts as the caller, who then
    needs the IAM rights the runner policy leaves out (an administrator, or the emulator)."""
    if config.cfn_role:
        if ":role/" not in config.cfn_role or not config.cfn_role.startswith("arn:"):
            raise ConfigError(
                f"--knot-cfn-role '{config.cfn_role}' is not an IAM role ARN. Give the ARN "
                "that 'knot infra service-role' prints (arn:aws:iam::<account>:role/...)."
            )
        return config
    name = service_role_name(config.stack_name)
    try:
        arn = clients.iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as exc:
        # Not there, or an identity that may not look (e.g. an older runner policy): act
        # as the caller, as knot did before service roles.
        if error_code(exc) in {"NoSuchEntity", *_DENIED}:
            return config
        raise aws_error(exc, f"looking up the service role {name}", service="iam") from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"looking up the service role {name}", service="iam") from exc
    return dataclasses.replace(config, cfn_role=arn)


def create_service_role(clients: Clients, stack_name: str) -> list[str]:
    """Create (or bring up to date) the boundary policy and the service role; return what
    was done. Needs an administrator's rights, once per account and stack name."""
    partition = partition_of(clients)
    account = caller_identity(clients)["Account"]
    done = [_ensure_boundary(clients, partition, stack_name)]
    done.append(_ensure_role(clients, stack_name))
    policy = service_role_policy(partition, stack_name, account)
    _iam(
        clients,
        "put_role_policy",
        f"writing the policy of {service_role_name(stack_name)}",
        RoleName=service_role_name(stack_name),
        PolicyName=INLINE_POLICY,
        PolicyDocument=json.dumps(policy),
    )
    return done


def _iam(clients: Clients, method: str, doing: str, **kwargs) -> dict:
    try:
        return getattr(clients.iam, method)(**kwargs)
    except _BotoErrors as exc:
        raise aws_error(exc, doing, service="iam") from exc


def _exists(exc: ClientError) -> bool:
    return error_code(exc) == "EntityAlreadyExists"


def _ensure_role(clients: Clients, stack_name: str) -> str:
    name = service_role_name(stack_name)
    trust = json.dumps(service_role_trust())
    try:
        clients.iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=trust,
            Description=f"CloudFormation creates knot's stack '{stack_name}' as this role",
        )
        return f"created role {name}"
    except ClientError as exc:
        if not _exists(exc):
            raise aws_error(exc, f"creating the role {name}", service="iam") from exc
    _iam(clients, "update_assume_role_policy", f"updating {name}", RoleName=name,
         PolicyDocument=trust)  # fmt: skip
    return f"updated role {name}"


def _ensure_boundary(clients: Clients, partition: str, stack_name: str) -> str:
    name, path = boundary_name(stack_name), boundary_path(stack_name)
    document = json.dumps(boundary_policy(partition, stack_name))
    try:
        clients.iam.create_policy(PolicyName=name, Path=path, PolicyDocument=document)
        return f"created policy {path}{name}"
    except ClientError as exc:
        if not _exists(exc):
            raise aws_error(exc, f"creating the policy {name}", service="iam") from exc
    arn = _policy_arn(clients, partition, path, name)
    _drop_old_versions(clients, arn)
    _iam(clients, "create_policy_version", f"updating {name}", PolicyArn=arn,
         PolicyDocument=document, SetAsDefault=True)  # fmt: skip
    return f"updated policy {path}{name}"


def _policy_arn(clients: Clients, partition: str, path: str, name: str) -> str:
    account = caller_identity(clients)["Account"]
    return f"arn:{partition}:iam::{account}:policy{path}{name}"


def _drop_old_versions(clients: Clients, arn: str) -> None:
    """IAM keeps at most five versions of a policy; drop the non-default ones."""
    found = _iam(clients, "list_policy_versions", f"listing versions of {arn}", PolicyArn=arn)
    for version in found["Versions"]:
        if not version["IsDefaultVersion"]:
            _iam(clients, "delete_policy_version", f"pruning {arn}", PolicyArn=arn,
                 VersionId=version["VersionId"])  # fmt: skip
