"""Tear down knot's shared stack (``knot infra down``): refuse while its jobs run, or
terminate them with --force; empty its bucket (S3 deletes only empty buckets) and its image
repository; deregister knot's job definitions and delete the stack's secrets; then delete
the stack. The rest of the stack's life, create-or-reuse and describe, is in ``stack``.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from ..config.settings import KnotConfig
from ..errors import ConfigError, aws_error
from .clients import Clients
from .secrets import delete_stack_secrets
from .stack import StackOps, active_jobs, require_knots
from .status import terminate_jobs
from .template.common import STACK_TAG

_BotoErrors = (BotoCoreError, ClientError)


def _empty_bucket(clients: Clients, bucket: str) -> list[str]:
    # Versioning is never enabled on knot's bucket, so deleting the keys empties it.
    count = 0
    try:
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:  # a page holds at most 1000 keys, DeleteObjects' limit
                clients.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                count += len(keys)
    except _BotoErrors as exc:
        raise aws_error(exc, f"emptying bucket '{bucket}'", service="s3") from exc
    return [f"{count} objects in s3://{bucket}"] if count else []


def _empty_repository(clients: Clients, repository: str) -> list[str]:
    count = 0
    try:
        pages = clients.ecr.get_paginator("list_images").paginate(repositoryName=repository)
        for page in pages:
            ids = page.get("imageIds", [])
            for start in range(0, len(ids), 100):  # BatchDeleteImage takes 100 at a time
                chunk = ids[start : start + 100]
                clients.ecr.batch_delete_image(repositoryName=repository, imageIds=chunk)
                count += len(chunk)
    except _BotoErrors as exc:
        raise aws_error(exc, f"emptying ECR repository '{repository}'", service="ecr") from exc
    return [f"{count} images in ECR repository {repository}"] if count else []


def _knot_job_definitions(clients: Clients, stack_name: str) -> list[str]:
    arns = []
    paginator = clients.batch.get_paginator("describe_job_definitions")
    try:
        for page in paginator.paginate(status="ACTIVE"):
            for jd in page["jobDefinitions"]:
                ours = jd.get("tags", {}).get(STACK_TAG) == stack_name
                if ours and jd["jobDefinitionName"].startswith("knot-"):
                    arns.append(jd["jobDefinitionArn"])
    except _BotoErrors as exc:
        raise aws_error(exc, "listing knot's job definitions", service="batch") from exc
    return arns


def _deregister_job_definitions(clients: Clients, stack_name: str) -> list[str]:
    arns = _knot_job_definitions(clients, stack_name)
    for arn in arns:
        try:
            clients.batch.deregister_job_definition(jobDefinition=arn)
        except _BotoErrors as exc:
            raise aws_error(exc, f"deregistering job definition {arn}", service="batch") from exc
    return [f"job definition {arn}" for arn in arns]


def _of_type(resources: dict[str, tuple[str, str]], kind: str) -> list[str]:
    return [physical for rtype, physical in resources.values() if rtype == kind]


def teardown(clients: Clients, config: KnotConfig, force: bool = False) -> list[str]:
    """Delete the stack and what knot put in it; return what was deleted.

    Refuses while jobs are active unless ``force`` (which terminates them). Only the
    stack's own bucket and repository are emptied, and only job definitions named
    ``knot-*`` tagged with this stack are deregistered."""
    ops = StackOps(clients, config.stack_name)
    stack = ops.settled()
    if stack is None:
        return []
    require_knots(stack)
    resources = ops.resources()
    jobs = [j for q in _of_type(resources, "AWS::Batch::JobQueue") for j in active_jobs(clients, q)]
    if jobs and not force:
        raise ConfigError(
            f"{len(jobs)} jobs are still active in the job queue of knot's stack "
            f"'{config.stack_name}'. Wait for them to finish, or run "
            f"'knot --stack-name {config.stack_name} infra down --force' to terminate them."
        )
    terminate_jobs(clients.batch, jobs, "knot infra down --force")
    deleted = [f"job {job_id} (terminated)" for job_id in jobs]
    for bucket in _of_type(resources, "AWS::S3::Bucket"):
        deleted += _empty_bucket(clients, bucket)
    for repository in _of_type(resources, "AWS::ECR::Repository"):
        deleted += _empty_repository(clients, repository)
    deleted += _deregister_job_definitions(clients, config.stack_name)
    deleted += delete_stack_secrets(clients.secretsmanager, config.stack_name)
    ops.delete()
    return [*deleted, f"stack {config.stack_name}"]
