"""A group job's one Batch size and compute class (pure): its members run one after another
in one Batch job on one instance, but for those a pipe() joins, which run at the same time
(see ``jobs/group.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from snakemake.common.tbdstring import TBDString

from ..config.settings import KnotConfig
from ..errors import RuleError
from ..jobs.group import group_error, member_rules
from .resources import SIZING, BatchResources, guessed_disk, job_batch_resources
from .routing import CLASS_RESOURCE, check_fits

if TYPE_CHECKING:
    from snakemake.jobs import GroupJob


def group_resources(job: GroupJob, config: KnotConfig) -> BatchResources:
    """Members run one at a time, so the job needs the largest step's vCPUs, memory and
    GPUs, and the sum of the steps' time limits (none if any member has none). A step is
    one member, or all members of one pipe group, which run at once: their sizes add up
    and their time limit is the longest, as Snakemake merges a pipe group's resources.
    Each member's own values are checked as a single job's would be, and the largest of
    each dimension against the group's compute class (see ``group_class``)."""
    for member in job.jobs:
        _check_known(job, member)
    sizes = [job_batch_resources(member, config) for member in job.jobs]
    steps = [_at_once(step) for step in _steps(list(job.jobs), sizes)]
    timeouts = [s.timeout_s for s in steps if s.timeout_s is not None]
    combined = BatchResources(
        vcpus=max(s.vcpus for s in steps),
        memory_mib=max(s.memory_mib for s in steps),
        gpus=max(s.gpus for s in steps),
        timeout_s=None if len(timeouts) < len(steps) else sum(timeouts),
        compute_class=group_class(job, sizes),
    )
    label = f"group '{job.groupid}'"
    klass = config.compute_class(combined.compute_class)
    assert klass is not None  # group_class picked it from the members' own classes
    check_fits(label, combined, None, klass)
    return combined


def _check_known(job: GroupJob, member) -> None:
    """A member's resource computed from an input another member makes stays '<TBD>' until
    that member ran; Snakemake's job inside a remote group evaluates it then, but knot sizes
    the Batch job and writes each member's spec before the group starts."""
    sizing = {*SIZING, CLASS_RESOURCE}
    if guessed_disk(member):  # Snakemake's own guess of the disk is not checked
        sizing -= {"disk_mb", "disk_mib"}
    for name, value in member.resources.items():
        # Others ('tmpdir', which Snakemake leaves to the job, say) do not size the job.
        if name in sizing and isinstance(value, TBDString):
            raise RuleError(
                f"Rule '{member.rule.name}' in group '{job.groupid}': resource '{name}' is "
                "computed from an input that another member of the group makes, so it is not "
                "known before the group runs, and knot sizes the group's AWS Batch job before "
                f"it starts. Give {name} a value that does not depend on that input, or take "
                "the rule out of the group."
            )


def _steps(members: list, sizes: list[BatchResources]) -> list[list[BatchResources]]:
    """The members' sizes, one list per member, or per pipe group (Snakemake's
    ``pipe_group``)."""
    steps: dict[object, list[BatchResources]] = {}
    for index, (member, size) in enumerate(zip(members, sizes, strict=True)):
        group = getattr(member, "pipe_group", None)
        steps.setdefault(index if group is None else ("pipe", group), []).append(size)
    return list(steps.values())


def _at_once(sizes: list[BatchResources]) -> BatchResources:
    timeouts = [s.timeout_s for s in sizes]
    return BatchResources(
        vcpus=sum(s.vcpus for s in sizes),
        memory_mib=sum(s.memory_mib for s in sizes),
        gpus=sum(s.gpus for s in sizes),
        timeout_s=None if None in timeouts else max(t for t in timeouts if t is not None),
        compute_class=sizes[0].compute_class,
    )


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
