"""Fidelity fixes for moto's CloudFormation: a stack name is claimed atomically, an update
replaces a role's inline policies, and deleting a stack deletes its route table, job queue
and compute environments (moto keeps them, so the VPC could not go).
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

from moto.batch.models import ComputeEnvironment, JobQueue, batch_backends
from moto.cloudformation.models import CloudFormationBackend
from moto.ec2.models import ec2_backends
from moto.ec2.models.route_tables import RouteTable
from moto.iam.models import Role

from .descriptors import stored


def serialised(method: Any) -> Any:
    """``method`` one call at a time. AWS claims a stack name atomically; moto checks the
    name, then inserts the stack, so two first runs at once could each create one."""
    lock = threading.Lock()

    @functools.wraps(method)
    def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return one_at_a_time


def delete_route_table(route_table: Any, account_id: str, region_name: str) -> None:
    """moto's RouteTable has no delete, so its VPC, and the stack, could never be deleted.
    AWS deletes it once its associations are gone (moto raises until then, and
    CloudFormation tries again after the other resources)."""
    ec2_backends[account_id][region_name].delete_route_table(route_table.id)


def delete_batch_resource(resource: Any, account_id: str, region_name: str) -> None:
    """moto's stacks keep their job queues and compute environments (with the instances
    of a managed one, which hold the subnets). AWS deletes them with the stack."""
    backend = batch_backends[account_id][region_name]
    if isinstance(resource, ComputeEnvironment):
        backend.delete_compute_environment(resource.arn)
    else:
        backend.delete_job_queue(resource.arn)


def replace_inline_policies(role: Any, policies: list[dict]) -> None:
    """A role's inline policies become exactly the template's ``Policies``, as a stack
    update does on AWS. moto updates only the description, so a run that adds a bucket to
    knot's job role would leave the old policy in place."""
    wanted = {p["PolicyName"]: p["PolicyDocument"] for p in policies}
    for name in [n for n in role.policies if n not in wanted]:
        role.delete_policy(name)
    for name, document in wanted.items():
        role.put_policy(name, document if isinstance(document, str) else json.dumps(document))


def patch_stacks() -> None:
    # Replacing moto's method is the point here, which mypy's method-assign forbids.
    create_stack = serialised(CloudFormationBackend.create_stack)
    CloudFormationBackend.create_stack = create_stack  # type: ignore[method-assign]
    # moto's classes have no delete; CloudFormation calls one where a resource has it.
    RouteTable.delete = delete_route_table  # type: ignore[attr-defined]
    ComputeEnvironment.delete = delete_batch_resource  # type: ignore[attr-defined]
    JobQueue.delete = delete_batch_resource  # type: ignore[attr-defined]
    original_update = stored(Role, "update_from_cloudformation_json", classmethod).__func__

    def update_role(cls, **kwargs: Any) -> Any:  # moto passes every argument by name
        role = original_update(cls, **kwargs)
        properties = kwargs["cloudformation_json"].get("Properties") or {}
        replace_inline_policies(role, properties.get("Policies") or [])
        return role

    # Replacing moto's classmethod is the point here, which mypy's method-assign forbids; it
    # also takes the attribute for the function that the classmethod wraps.
    Role.update_from_cloudformation_json = classmethod(  # type: ignore[method-assign, assignment]
        update_role
    )
