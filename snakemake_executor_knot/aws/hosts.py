"""The EC2 instance type each job ran on, for the run record's costs, with as few calls as
AWS allows.

Batch does not say the instance type. DescribeJobs gives each job on EC2 its ECS container
instance (``container.containerInstanceArn``), and ECS's DescribeContainerInstances gives
that instance's ``ecs.instance-type`` attribute, 100 instances a call, per cluster. Single
jobs carry the ARN in the descriptions the status checks already read (aws.status keeps
it); array children are read with ListJobs, whose summaries lack it, so they are described
once at the end of the run, 100 per call. Many jobs share an instance: each instance is
asked about once. Jobs without a container instance (moto's Batch, Fargate) get none, and
the report then prices them as an estimate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import aws_error
from .status import chunks, container_instance, describe_jobs

INSTANCE_TYPE_ATTRIBUTE = "ecs.instance-type"
DESCRIBE_INSTANCES_CHUNK = 100  # DescribeContainerInstances limit


def cluster_of(instance_arn: str) -> str | None:
    """The cluster named in a container instance ARN of ECS's long format
    (``arn:aws:ecs:<region>:<account>:container-instance/<cluster>/<id>``); None for the old
    short format, which does not name it."""
    resource = instance_arn.split(":", 5)[-1]
    parts = resource.split("/")
    if len(parts) == 3 and parts[0] == "container-instance" and all(parts[1:]):
        return parts[1]
    return None


def find_container_instances(batch_client, job_ids: Iterable[str]) -> dict[str, str]:
    """job id -> container instance ARN, describing ``job_ids`` 100 per call. A first call
    that finds no instance at all ends the search: the rest ran where there is none too
    (moto, Fargate), and describing them would only cost calls."""
    found: dict[str, str] = {}
    for chunk in chunks(list(dict.fromkeys(job_ids))):
        described = describe_jobs(batch_client, chunk)
        arns = {job_id: container_instance(d) for job_id, d in described.items()}
        found.update({job_id: arn for job_id, arn in arns.items() if arn})
        if not found:
            break
    return found


def instance_types(ecs_client, instance_arns: Iterable[str]) -> dict[str, str]:
    """container instance ARN -> instance type, one DescribeContainerInstances per cluster
    and 100 instances."""
    by_cluster: dict[str, list[str]] = defaultdict(list)
    for arn in dict.fromkeys(instance_arns):
        cluster = cluster_of(arn)
        if cluster:
            by_cluster[cluster].append(arn)
    types: dict[str, str] = {}
    for cluster, arns in by_cluster.items():
        for chunk in chunks(arns, DESCRIBE_INSTANCES_CHUNK):
            types.update(_describe(ecs_client, cluster, list(chunk)))
    return types


def _describe(ecs_client, cluster: str, arns: list[str]) -> dict[str, str]:
    try:
        reply = ecs_client.describe_container_instances(cluster=cluster, containerInstances=arns)
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "finding the instance types jobs ran on", service="ecs") from exc
    types = {}
    for instance in reply.get("containerInstances") or []:
        for attribute in instance.get("attributes") or []:
            if attribute.get("name") == INSTANCE_TYPE_ATTRIBUTE and attribute.get("value"):
                types[instance["containerInstanceArn"]] = str(attribute["value"])
    return types
