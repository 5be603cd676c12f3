"""A group job's one Batch size and compute class (pure): its members run one after another
in one Batch job on one instance (see ``jobs/group.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config.settings import KnotConfig
from ..jobs.group import group_error, member_rules
from .resources import BatchResources, job_batch_resources
from .routing import check_fits

if TYPE_CHECKING:
    from snakemake.jobs import GroupJob


def group_resources(job: GroupJob, config: KnotConfig) -> BatchResources:
    """Members run one at a time, so the job needs the largest member's vCPUs, memory and
    GPUs, and the sum of their time limits (none if any member has none). Each member's
    own values are checked as a single job's would be, and the largest of each dimension
    against the group's compute class (see ``group_class``)."""
    sizes = [job_batch_resources(member, config) for member in job.jobs]
    timeouts = [s.timeout_s for s in sizes if s.timeout_s is not None]
    combined = BatchResources(
        vcpus=max(s.vcpus for s in sizes),
        memory_mib=max(s.memory_mib for s in sizes),
        gpus=max(s.gpus for s in sizes),
        timeout_s=None if len(timeouts) < len(sizes) else sum(timeouts),
        compute_class=group_class(job, sizes),
    )
    label = f"group '{job.groupid}'"
    klass = config.compute_class(combined.compute_class)
    assert klass is not None  # group_class picked it from the members' own classes
    check_fits(label, combined, None, klass)
    return combined


def group_class(job: GroupJob, sizes: list[BatchResources]) -> str:
    """One Batch job runs on one instance: the class of the group's GPU members, where the
    CPU members ride along, or else the one class all members share."""
    with_gpus = {s.compute_class for s in sizes if s.gpus > 0}
    classes = with_gpus or {s.compute_class for s in sizes}
    if len(classes) == 1:
        return classes.pop()
    raise group_error(
        str(job.groupid),
        ", ".join(member_rules(job)),
        f"its rules run in different compute classes ({', '.join(sorted(classes))}), and "
        "one Batch job runs on one instance",
        "give the grouped rules the same knot_class",
    )
