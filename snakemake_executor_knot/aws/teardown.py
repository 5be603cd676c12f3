"""Tear down knot's shared stack (``knot infra down``): refuse while its jobs run, or
terminate them with --yes; empty its bucket (S3 deletes only empty buckets) and its image
repository; deregister knot's job definitions and delete the stack's secrets; then delete
the stack. The rest of the stack's life, create-or-reuse and describe, is in ``stack``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from ..config.settings import KnotConfig
from ..errors import ConfigError, aws_error
from .clients import Clients
from .secrets import delete_stack_secrets
from .stack import StackOps, active_jobs, require_knots
from .status import terminate_jobs
from .template.common import STACK_TAG
from .template.storage import FILES_PREFIX

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


@dataclass
class Holdings:
    """What a stack holds that deleting it would end or lose."""

    active_jobs: list[str] = field(default_factory=list)
    # workflow id (the folder under knot/files/) -> [objects, bytes]
    workflows: dict[str, list[int]] = field(default_factory=dict)
    other_objects: list[int] = field(default_factory=lambda: [0, 0])  # specs, usage, lease
    images: int = 0
    buckets: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        jobs = self.active_jobs
        shown = ", ".join(jobs[:5]) + (f" and {len(jobs) - 5} more" if len(jobs) > 5 else "")
        lines = [f"Active jobs: {len(jobs)}" + (f" ({shown})" if jobs else "")]
        for workflow, (count, size) in sorted(self.workflows.items()):
            lines.append(f"Workflow files: {workflow}: {count} objects, {_size(size)}")
        if not self.workflows:
            lines.append("Workflow files: none")
        count, size = self.other_objects
        lines.append(f"Other objects: {count} (job specs, usage documents), {_size(size)}")
        lines.append(f"Images: {self.images} in knot's ECR repository")
        return lines


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"


def _bucket_holdings(clients: Clients, bucket: str, holdings: Holdings) -> None:
    counts: Counter = Counter()
    sizes: Counter = Counter()
    try:
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                key = str(obj.get("Key", ""))
                rest = key[len(FILES_PREFIX) :] if key.startswith(FILES_PREFIX) else ""
                # A key from S3 is only counted: its workflow part is shown, never followed.
                workflow = rest.split("/", 1)[0][:64] if "/" in rest else None
                counts[workflow] += 1
                sizes[workflow] += int(obj.get("Size") or 0)
    except _BotoErrors as exc:
        raise aws_error(exc, f"listing bucket '{bucket}'", service="s3") from exc
    for workflow, count in counts.items():
        if workflow is None:
            holdings.other_objects = [count, sizes[workflow]]
        else:
            holdings.workflows[workflow] = [count, sizes[workflow]]


def _image_count(clients: Clients, repository: str) -> int:
    try:
        pages = clients.ecr.get_paginator("list_images").paginate(repositoryName=repository)
        return sum(len(page.get("imageIds", [])) for page in pages)
    except _BotoErrors as exc:
        raise aws_error(exc, f"listing ECR repository '{repository}'", service="ecr") from exc


def stack_holdings(clients: Clients, config: KnotConfig) -> Holdings | None:
    """What the stack holds, for 'knot infra down' to show before it asks; None when
    there is no such stack."""
    ops = StackOps(clients, config.stack_name)
    stack = ops.settled()
    if stack is None:
        return None
    require_knots(stack)
    resources = ops.resources()
    holdings = Holdings()
    jobs = (
        job for q in _of_type(resources, "AWS::Batch::JobQueue") for job in active_jobs(clients, q)
    )
    holdings.active_jobs = list(dict.fromkeys(jobs))  # once each, whichever queue named it
    for bucket in _of_type(resources, "AWS::S3::Bucket"):
        holdings.buckets.append(bucket)
        _bucket_holdings(clients, bucket, holdings)
    for repository in _of_type(resources, "AWS::ECR::Repository"):
        holdings.images += _image_count(clients, repository)
    return holdings


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
            f"'knot --stack-name {config.stack_name} infra down --yes' to terminate them."
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
