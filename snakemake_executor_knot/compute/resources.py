"""Per-job Batch sizes from Snakemake's ``threads`` and ``resources`` (pure): vCPUs,
memory, GPUs, timeout and the compute class (``routing``). Checked for every job before
anything is created, from the values known then (``planned_resources``); a job's own
resources are Snakemake's, evaluated when it hands the job over."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

try:  # Snakemake's lazily evaluated resources (later 9.x releases)
    from snakemake.resources import Resource
except ImportError:  # pragma: no cover - Snakemake 9.0: a rule's resources are evaluated
    Resource = None  # type: ignore[assignment,misc]

from ..config.classes import DEFAULT_CLASS
from ..config.settings import KnotConfig
from ..errors import RuleError
from .routing import pick_class

if TYPE_CHECKING:
    from snakemake.jobs import Job

DEFAULT_MEMORY_MIB = 2048
MIN_TIMEOUT_S = 60  # AWS rejects attemptDurationSeconds below 60


# The resources a job's Batch size and compute class are read from (besides threads).
SIZING = ("mem_mb", "mem_mib", "gpu", "nvidia_gpu", "runtime", "disk_mb", "disk_mib")


@dataclass(frozen=True)
class BatchResources:
    vcpus: int
    memory_mib: int
    gpus: int
    timeout_s: int | None
    compute_class: str = DEFAULT_CLASS


def _number(rule: str, name: str, value: object) -> float:
    # bool is an int in Python, but `mem_mb=True` is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(
            f"Rule '{rule}': resource '{name}' must be a number, not {value!r}. "
            f"Set {name} to a number in the rule, e.g. {name}=4."
        )
    return value


def _memory_mib(rule: str, resources: Mapping[str, object]) -> int:
    key = "mem_mb" if "mem_mb" in resources else "mem_mib"
    if key not in resources:
        return DEFAULT_MEMORY_MIB
    mem = _number(rule, key, resources[key])
    if mem <= 0:
        raise RuleError(
            f"Rule '{rule}': resources {key}={mem} must be positive. Set e.g. {key}=4000, "
            f"or remove it to get the default of {DEFAULT_MEMORY_MIB} MiB."
        )
    return math.ceil(mem)


def _vcpus(rule: str, threads: object) -> int:
    count = _number(rule, "threads", threads)
    if count < 0:
        raise RuleError(f"Rule '{rule}': threads={count} must not be negative. Set threads: 1.")
    # threads: 0 (a job that needs no core of its own, to Snakemake's scheduler) still
    # gets one vCPU: Batch's smallest job. Its code sees threads as written.
    return max(1, math.ceil(count))


def _gpus(rule: str, resources: Mapping[str, object]) -> int:
    # Snakemake's standard resource is ``gpu``; ``nvidia_gpu`` is the older spelling its
    # Kubernetes executor reads, accepted here too.
    key = "gpu" if "gpu" in resources else "nvidia_gpu"
    gpus = _number(rule, key, resources.get(key, 0))
    if gpus < 0 or gpus != int(gpus):
        raise RuleError(f"Rule '{rule}': resources {key}={gpus} must be a whole number >= 0.")
    return int(gpus)


def _disk_mb(rule: str, resources: Mapping[str, object]) -> float | None:
    if "disk_mb" in resources:
        return _number(rule, "disk_mb", resources["disk_mb"])
    if "disk_mib" in resources:
        return _number(rule, "disk_mib", resources["disk_mib"]) * 2**20 / 10**6
    return None


def _timeout_s(rule: str, resources: Mapping[str, object]) -> int | None:
    if "runtime" not in resources:
        return None
    minutes = _number(rule, "runtime", resources["runtime"])
    if minutes <= 0:
        raise RuleError(
            f"Rule '{rule}': resources runtime={minutes} must be positive (minutes). "
            "Set e.g. runtime=30, or remove it for no time limit."
        )
    return max(MIN_TIMEOUT_S, math.ceil(minutes * 60))


def batch_resources(
    rule: str,
    threads: int,
    resources: Mapping[str, object],
    config: KnotConfig,
    check_disk: bool = True,
) -> BatchResources:
    """Snakemake's threads and resources as Batch sizes, and the compute class that can
    hold them; RuleError names any bad value. ``check_disk`` is off when ``disk_mb`` is
    only Snakemake's own guess, not something the user asked for."""
    sizes = BatchResources(
        vcpus=_vcpus(rule, threads),
        memory_mib=_memory_mib(rule, resources),
        gpus=_gpus(rule, resources),
        timeout_s=_timeout_s(rule, resources),
    )
    disk_mb = _disk_mb(rule, resources) if check_disk else None
    klass = pick_class(rule, sizes, resources, config, disk_mb)
    return dataclasses.replace(sizes, compute_class=klass.name)


def job_batch_resources(
    job: Job,
    config: KnotConfig,
    resources: Mapping[str, object] | None = None,
    threads: int | None = None,
) -> BatchResources:
    """The job's Batch sizes and compute class (``resources.batch_resources``): from the
    resources Snakemake evaluated for it, or from ``resources`` and ``threads`` given."""
    if resources is None:
        resources = dict(job.resources.items())
    if threads is None:
        threads = job.threads
    check_disk = not guessed_disk(job)
    return batch_resources(job.rule.name, threads, resources, config, check_disk)


def planned_resources(job: Job) -> tuple[int, dict[str, object]]:
    """The job's threads and resources as far as they are known without calling any of the
    workflow's functions: Snakemake evaluates a resource given as a function (of the input's
    size, of ``attempt``) just before the job runs, and hands the job over with it then;
    until then such a resource is left out here, and threads given by one count as 1.
    Constants (the Snakefile's, --set-resources, --default-resources, profiles) are
    expanded and constrained as Snakemake does (``mem`` -> ``mem_mb``, ``--cores``)."""
    declared = getattr(job.rule, "resources", None)
    # No Snakemake rule behind it, or a Snakemake without lazy resources (9.0): the job's
    # resources as they are.
    if declared is None or Resource is None or not hasattr(declared, "expand_items"):
        values = dict(job.resources.items())
        return values.pop("_cores", job.threads), values
    workflow = job.rule.workflow
    limits = workflow.global_resources
    values = {
        name: value
        for name, value in declared.expand_items(
            constraints=limits, evaluate=_unknown, skip={"_cores"}
        )
        if value is not None
    }
    cores = declared.get("_cores")
    threads = 1
    if cores is not None and not cores.is_evaluable():
        found = cores.constrain(workflow.resource_settings.max_threads)
        found = found.constrain(limits.get("_cores")).value
        threads = found if isinstance(found, int) else 1
    return threads, values


def _unknown(resource: Resource) -> Resource:
    """A resource given as a function, not called: unset (None) until the job is ready."""
    return Resource(resource.name, None)


def guessed_disk(job: Job) -> bool:
    """Whether the job's disk_mb is Snakemake's own guess: plain --default-resources fill
    it with "twice the input, or 50 GB without input", which is no request for a volume.
    Snakemake copies that default (a function with no raw text, where a value the user
    wrote has one) into every rule's resources, where it stays equal to the workflow's
    until the rule or --set-resources gives its own; a rule's own function is not equal."""
    settings = getattr(job.rule.workflow, "resource_settings", None)
    # The settings' public field: the parsed defaults (Snakemake's CLI hands it parsed
    # Resources); None means no --default-resources, whose bare defaults hold no disk.
    defaults = getattr(settings, "default_resources", None)
    if defaults is None:
        return False
    try:
        default = defaults["disk_mb"]
        resources = job.rule.resources
        if resources is None:
            return False
        mine = resources["disk_mb"]
    except (KeyError, TypeError):
        return False
    return mine == default and getattr(default, "raw", "") is None
