"""Which compute class a job runs in, and whether it fits there (pure).

``resources: knot_class="name"`` picks a class. Without it, a job that asks for GPUs goes
to a class whose instance types have GPUs, and every other job to ``default``. A CPU job
never runs in a GPU class, not even when it names one: GPU instances cost several times
as much, and Batch would happily fill them with CPU work. Every refusal happens before
anything is built or submitted, and names the rule, the class and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..config.classes import DEFAULT_CLASS, FLAG, ComputeClass
from ..config.settings import KnotConfig
from ..errors import RuleError
from .instances import largest

CLASS_RESOURCE = "knot_class"
MB_PER_GIB = 2**30 / 10**6  # disk_mb counts 10**6 bytes, EBS volumes GiB


class Sizes(Protocol):
    """Read-only, so that a frozen dataclass (``BatchResources``) is one."""

    @property
    def vcpus(self) -> int: ...
    @property
    def memory_mib(self) -> int: ...
    @property
    def gpus(self) -> int: ...


def pick_class(
    rule: str,
    sizes: Sizes,
    resources: Mapping[str, object],
    config: KnotConfig,
    disk_mb: float | None,
) -> ComputeClass:
    """The class this job runs in; RuleError when none can hold it. ``disk_mb`` is the
    scratch space the rule asks for (None: not checked)."""
    name = resources.get(CLASS_RESOURCE)
    if name is not None:
        klass = _named(rule, name, config)
        _check_gpu_match(rule, sizes, klass)
        check_fits(rule, sizes, disk_mb, klass)
        return klass
    if sizes.gpus <= 0:
        check_fits(rule, sizes, disk_mb, config.default_class)
        return config.default_class
    return _gpu_class(rule, sizes, config, disk_mb)


def _named(rule: str, name: object, config: KnotConfig) -> ComputeClass:
    known = ", ".join(c.name for c in config.compute_classes)
    klass = config.compute_class(name) if isinstance(name, str) else None
    if klass is None:
        raise RuleError(
            f"Rule '{rule}': {CLASS_RESOURCE}={name!r} names no compute class (this run has: "
            f'{known}). Define it, e.g. {FLAG} "{name}=m6i:100GB", or pick one of those.'
        )
    return klass


def _check_gpu_match(rule: str, sizes: Sizes, klass: ComputeClass) -> None:
    if sizes.gpus > 0 and not klass.has_gpus:
        raise RuleError(
            f"Rule '{rule}' asks for {sizes.gpus} GPU(s), but its compute class "
            f"'{klass.name}' ({','.join(klass.instance_types)}) has no GPU instance types. "
            f"Pick a GPU class with {CLASS_RESOURCE}, or remove 'gpu' from its resources."
        )
    if sizes.gpus <= 0 and klass.has_gpus:
        raise RuleError(
            f"Rule '{rule}' asks for no GPU, but its compute class '{klass.name}' has only "
            "GPU instance types, and knot never puts CPU jobs on GPU instances. Set gpu=1 "
            f"in its resources if it uses one, or pick a CPU class with {CLASS_RESOURCE}."
        )


def _gpu_class(rule: str, sizes: Sizes, config: KnotConfig, disk_mb: float | None) -> ComputeClass:
    """The first GPU class (in the order they were defined) that can hold the job."""
    candidates = [c for c in config.classes if c.has_gpus]
    if not candidates:
        raise RuleError(
            f"Rule '{rule}' asks for {sizes.gpus} GPU(s), but no compute class has GPU "
            f"instance types. Define one, e.g. {FLAG} \"gpu=g5,g4dn\", or remove 'gpu' "
            "from the rule's resources."
        )
    problems: list[RuleError] = []
    for klass in candidates:
        try:
            check_fits(rule, sizes, disk_mb, klass)
        except RuleError as problem:
            problems.append(problem)
            continue
        return klass
    raise problems[0]  # candidates is not empty, and none could hold the job


def _where(klass: ComputeClass, flag: str, option: str) -> str:
    if klass.name == DEFAULT_CLASS:
        return f"{flag}"
    return f"{option} of class '{klass.name}' in {FLAG}"


def check_fits(rule: str, sizes: Sizes, disk_mb: float | None, klass: ComputeClass) -> None:
    """Batch leaves a job no allowed instance can hold RUNNABLE forever, without a word;
    a job whose scratch outgrows the root volume dies with 'no space left on device'."""
    if sizes.vcpus > klass.max_vcpus:
        raise RuleError(
            f"Rule '{rule}': threads={sizes.vcpus} exceeds the {klass.max_vcpus} vCPUs of "
            f"compute class '{klass.name}'. Lower threads: or raise "
            f"{_where(klass, '--knot-max-vcpus', 'maxvcpus')}."
        )
    _check_instance(rule, sizes, klass)
    limit_mb = klass.root_volume_gb * MB_PER_GIB
    if disk_mb is not None and disk_mb > limit_mb:
        raise RuleError(
            f"Rule '{rule}': disk_mb={disk_mb:g} exceeds the {klass.root_volume_gb} GiB "
            f"({int(limit_mb)} MB) root volume of compute class '{klass.name}'. Lower "
            f"disk_mb, raise {_where(klass, '--knot-root-volume-gb', 'the volume')}, or pick "
            f'a class with a larger volume (e.g. {FLAG} "bigdisk=m6i:500GB" and '
            f'{CLASS_RESOURCE}="bigdisk").'
        )


def _check_instance(rule: str, sizes: Sizes, klass: ComputeClass) -> None:
    limit = largest(klass.instance_types)
    if limit is None:
        return
    types = ",".join(klass.instance_types)
    where = f"compute class '{klass.name}' (instance types {types})"
    if sizes.vcpus > limit.vcpus:
        raise RuleError(
            f"Rule '{rule}': threads={sizes.vcpus} exceeds the {limit.vcpus} vCPUs of the "
            f"largest instance of {where}. Lower threads: or allow larger instance types."
        )
    if sizes.memory_mib > limit.memory_gib * 1024:
        raise RuleError(
            f"Rule '{rule}': mem_mb={sizes.memory_mib} exceeds the {limit.memory_gib:g} GiB "
            f"({int(limit.memory_gib * 1024)} MiB) of the largest instance of {where}. "
            "Lower mem_mb or allow larger instance types."
        )
