"""Right-sizing: the memory and threads each rule needed, and a profile block that asks for
them (pure).

Memory is sized on the largest peak RSS of the rule's jobs with 25% headroom, since the same
rule on other inputs may need a little more. Threads are sized on the largest CPU time per
wall second, never above what was requested: a rule that used fewer cores than it had is
trimmed, but one that was held to its request cannot show whether more would help.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import yaml

from .pricing import PriceContext, price_job
from .records import UNKNOWN_RULE, JobRecord

HEADROOM = 1.25
MEM_STEP_MIB = 512
# Measured ratios such as 2.0000001 are 2: rounding first keeps float noise from adding a
# whole step of memory or a whole thread.
_DIGITS = 6


def suggest_mem_mb(jobs: Iterable[JobRecord]) -> int | None:
    """Largest peak RSS x 1.25, rounded up to a multiple of 512 MiB (at least 512); None
    when no job reported its peak."""
    peaks = [job.usage.peak_rss_mb for job in jobs if job.usage.peak_rss_mb is not None]
    if not peaks:
        return None
    steps = math.ceil(round(max(peaks) * HEADROOM / MEM_STEP_MIB, _DIGITS))
    return max(steps, 1) * MEM_STEP_MIB


def suggest_threads(jobs: Sequence[JobRecord]) -> int | None:
    """The most cores any job kept busy, ceil(cpu_s / wall_s), between 1 and the request;
    None when no job reported both times."""
    ratios = [
        job.usage.cpu_s / job.usage.wall_s
        for job in jobs
        if job.usage.cpu_s is not None and job.usage.wall_s
    ]
    if not ratios:
        return None
    threads = max(1, math.ceil(round(max(ratios), _DIGITS)))
    requested = requested_vcpus(jobs)
    if requested is not None:
        threads = min(threads, max(1, math.floor(requested)))
    return threads


def requested_vcpus(jobs: Iterable[JobRecord]) -> float | None:
    """The largest vCPU request among ``jobs``, if any recorded one."""
    return max((j.requested.vcpus for j in jobs if j.requested.vcpus is not None), default=None)


def requested_memory(jobs: Iterable[JobRecord]) -> float | None:
    """The largest memory request (MiB) among ``jobs``, if any recorded one."""
    values = (j.requested.memory_mib for j in jobs if j.requested.memory_mib is not None)
    return max(values, default=None)


def cost_if_resized(
    jobs: Iterable[JobRecord],
    mem_mb: int | None,
    threads: int | None,
    context: PriceContext,
) -> float | None:
    """What ``jobs`` would have cost with the suggested request and the same durations
    (a missing suggestion keeps the job's own request); None when no job can be priced."""
    total, priced = 0.0, False
    for job in jobs:
        vcpus = threads if threads is not None else job.requested.vcpus
        memory = mem_mb if mem_mb is not None else job.requested.memory_mib
        if vcpus is None or memory is None:
            continue
        found = price_job(job, vcpus, memory, context)
        if found is not None:
            total += found[0]
            priced = True
    return total if priced else None


def profile_block(rows: Iterable[Mapping]) -> str:
    """A ``set-resources:``/``set-threads:`` block with the suggestions of ``rows`` (from
    ``table.rule_rows``), to paste into a Snakemake profile's config.yaml."""
    resources, threads = {}, {}
    for row in rows:
        if row["rule"] == UNKNOWN_RULE:
            continue
        if row.get("suggested_mem_mb") is not None:
            resources[row["rule"]] = {"mem_mb": row["suggested_mem_mb"]}
        if row.get("suggested_threads") is not None:
            threads[row["rule"]] = row["suggested_threads"]
    header = "# knot report: sizes measured on this run; paste into your profile's config.yaml\n"
    if not resources and not threads:
        return header + "# (no suggestions: no job reported its memory or CPU use)\n"
    block = {"set-resources": resources, "set-threads": threads}
    body = {key: value for key, value in block.items() if value}
    # safe_dump quotes rule names YAML would otherwise misread ("yes", "1e3", "<x>: y").
    return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)
