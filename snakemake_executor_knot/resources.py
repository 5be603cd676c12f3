"""Per-job Batch sizes from Snakemake's ``threads`` and ``resources`` (pure): vCPUs,
memory, GPUs and timeout. Checked for every job before anything is created."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import RuleError
from .instances import largest
from .settings import KnotConfig

DEFAULT_MEMORY_MIB = 2048
MIN_TIMEOUT_S = 60  # AWS rejects attemptDurationSeconds below 60


@dataclass(frozen=True)
class BatchResources:
    vcpus: int
    memory_mib: int
    gpus: int
    timeout_s: int | None


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


def _vcpus(rule: str, threads: object, config: KnotConfig) -> int:
    count = _number(rule, "threads", threads)
    if count < 1:
        raise RuleError(f"Rule '{rule}': threads={count} must be at least 1. Set threads: 1.")
    if count > config.max_vcpus:
        # Batch would leave such a job RUNNABLE forever, as no instance can hold it.
        raise RuleError(
            f"Rule '{rule}': threads={count} exceeds the compute environment's "
            f"{config.max_vcpus} vCPUs. Lower threads: or raise --knot-max-vcpus."
        )
    return math.ceil(count)


def _gpus(rule: str, resources: Mapping[str, object], config: KnotConfig) -> int:
    gpus = _number(rule, "gpu", resources.get("gpu", 0))
    if gpus < 0 or gpus != int(gpus):
        raise RuleError(f"Rule '{rule}': resources gpu={gpus} must be a whole number >= 0.")
    if gpus > 0 and not config.has_gpu_instances:
        raise RuleError(
            f"Rule '{rule}' asks for {int(gpus)} GPU(s), but the compute environments have "
            "no GPU instance types. Pass GPU instance types with --knot-instance-types, "
            "e.g. --knot-instance-types g4dn, or remove 'gpu' from the rule's resources."
        )
    return int(gpus)


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
    rule: str, threads: int, resources: Mapping[str, object], config: KnotConfig
) -> BatchResources:
    """Snakemake's threads and resources as Batch sizes; RuleError names any bad value."""
    sizes = BatchResources(
        vcpus=_vcpus(rule, threads, config),
        memory_mib=_memory_mib(rule, resources),
        gpus=_gpus(rule, resources, config),
        timeout_s=_timeout_s(rule, resources),
    )
    _check_fits(rule, sizes, config)
    return sizes


def _check_fits(rule: str, sizes: BatchResources, config: KnotConfig) -> None:
    """Batch leaves a job no allowed instance can hold RUNNABLE forever, without a word."""
    limit = largest(config.instance_types)
    if limit is None:
        return
    types = ",".join(config.instance_types)
    if sizes.vcpus > limit.vcpus:
        raise RuleError(
            f"Rule '{rule}': threads={sizes.vcpus} exceeds the {limit.vcpus} vCPUs of the "
            f"largest instance the compute environment may launch (--knot-instance-types "
            f"{types}). Lower threads: or allow larger instance types."
        )
    if sizes.memory_mib > limit.memory_gib * 1024:
        raise RuleError(
            f"Rule '{rule}': mem_mb={sizes.memory_mib} exceeds the {limit.memory_gib:g} GiB "
            f"({int(limit.memory_gib * 1024)} MiB) of the largest instance the compute "
            f"environment may launch (--knot-instance-types {types}). Lower mem_mb or allow "
            "larger instance types."
        )
