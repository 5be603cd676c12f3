"""The per-rule table: time, memory and CPU used against what was requested, failures,
cost, and the suggested sizes (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .pricing import PriceContext, load_prices, price_context, price_job
from .reclaims import reclaims_field
from .records import JobRecord, RunRecord
from .sizing import (
    cost_if_resized,
    requested_memory,
    requested_vcpus,
    suggest_mem_mb,
    suggest_threads,
)

ROW_KEYS = (
    "rule",
    "jobs",
    "wall_s",
    "cpu_s",
    "peak_rss_mb",
    "requested_mem_mb",
    "suggested_mem_mb",
    "mem_usage",
    "requested_threads",
    "suggested_threads",
    "vcpu_usage",
    "failures",
    "retries",
    "reclaims",
    "cost_usd",
    "cost_usd_if_resized",
    "cost_estimated",
    "unpriced_jobs",
    "instance_types",
)


def rule_rows(run: RunRecord, context: PriceContext | None = None) -> list[dict]:
    """One row per rule, in DAG order (``rules_in_order``); priced with ``context``
    (default: knot's price table for the run's region and market)."""
    if context is None:
        context = price_context(run.pricing, load_prices(), run.spot_prices.get("prices"))
    return [_row(rule, jobs, context) for rule, jobs in rules_in_order(run).items()]


def by_rule(jobs: Iterable[JobRecord]) -> dict[str, list[JobRecord]]:
    """The jobs grouped by rule, rules in order of first appearance."""
    groups: dict[str, list[JobRecord]] = {}
    for job in jobs:
        groups.setdefault(job.rule, []).append(job)
    return groups


def rules_in_order(run: RunRecord) -> dict[str, list[JobRecord]]:
    """The jobs grouped by rule, rules in the record's DAG order (a rule after the rules
    whose outputs it reads); rules the order lacks (an older record) follow, in order of
    first appearance."""
    groups = by_rule(run.jobs)
    rank = {rule: index for index, rule in enumerate(run.rule_order)}
    ordered = sorted(groups, key=lambda rule: rank.get(rule, len(rank)))
    return {rule: groups[rule] for rule in ordered}


def total_cost(rows: Iterable[Mapping]) -> float:
    """The run's cost: the sum of the rules' known costs."""
    return sum(row["cost_usd"] for row in rows if row["cost_usd"] is not None)


def any_estimated(rows: Iterable[Mapping]) -> bool:
    """Whether any rule's cost rests on an inferred instance type."""
    return any(row["cost_estimated"] for row in rows)


def _row(rule: str, jobs: list[JobRecord], context: PriceContext) -> dict:
    wall = _sum(job.usage.wall_s for job in jobs)
    cpu = _sum(job.usage.cpu_s for job in jobs)
    peak = max((j.usage.peak_rss_mb for j in jobs if j.usage.peak_rss_mb is not None), default=None)
    memory, vcpus = requested_memory(jobs), requested_vcpus(jobs)
    mem_mb, threads = suggest_mem_mb(jobs), suggest_threads(jobs)
    cost = _cost(jobs, context)
    resized = cost_if_resized(jobs, mem_mb, threads, context)
    row = {
        "rule": rule,
        "jobs": len(jobs),
        "wall_s": _round(wall, 3),
        "cpu_s": _round(cpu, 3),
        "peak_rss_mb": _round(peak, 1),
        "requested_mem_mb": _whole(memory),
        "suggested_mem_mb": mem_mb,
        "mem_usage": _round(_ratio(peak, memory), 3),
        "requested_threads": _whole(vcpus),
        "suggested_threads": threads,
        "vcpu_usage": _round(_vcpu_usage(jobs), 3),
        "failures": sum(1 for job in jobs if job.status == "FAILED"),
        "retries": sum(max((job.attempts or 1) - 1, 0) for job in jobs),
        "reclaims": reclaims_field(jobs, context),
        "cost_usd": _round(cost["usd"], 6),
        "cost_usd_if_resized": _round(resized, 6),
        "cost_estimated": cost["estimated"],
        "unpriced_jobs": cost["unpriced"],
        "instance_types": cost["types"],
    }
    return {key: row[key] for key in ROW_KEYS}


def _cost(jobs: list[JobRecord], context: PriceContext) -> dict:
    """The rule's cost at its recorded requests, and how it was priced."""
    usd, unpriced, estimated, types = None, 0, False, set()
    for job in jobs:
        vcpus, memory = job.requested.vcpus, job.requested.memory_mib
        found = None
        if vcpus is not None and memory is not None:
            found = price_job(job, vcpus, memory, context)
        if found is None:
            unpriced += 1
            continue
        usd = (usd or 0.0) + found[0]
        estimated = estimated or found[1].estimate
        types.add(found[1].instance.name)
    return {"usd": usd, "unpriced": unpriced, "estimated": estimated, "types": sorted(types)}


def _vcpu_usage(jobs: list[JobRecord]) -> float | None:
    """CPU seconds over the vCPU seconds requested, for the jobs that reported both."""
    used = held = 0.0
    for job in jobs:
        cpu, wall, vcpus = job.usage.cpu_s, job.usage.wall_s, job.requested.vcpus
        if cpu is not None and wall and vcpus:
            used += cpu
            held += wall * vcpus
    return used / held if held else None


def _ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _whole(value: float | None) -> int | float | None:
    """An integral float as an int (8192.0 -> 8192), as a user wrote it in the Snakefile."""
    if value is not None and float(value).is_integer():
        return int(value)
    return value


JOB_KEYS = (
    "rule",
    "jobid",
    "wildcards",
    "batch_id",
    "status",
    "attempts",
    "exit_code",
    "instance_type",
    "instance_estimated",
    "wall_s",
    "queued_s",
)


def job_rows(run: RunRecord) -> list[dict]:
    """One row per job, rules in DAG order and each rule's jobs by jobid: what identifies
    it (rule, wildcards, Batch id) and how it went."""
    rows = []
    for rule, jobs in rules_in_order(run).items():
        for job in sorted(jobs, key=lambda j: (j.jobid is None, j.jobid or 0)):
            queued = None
            if job.host.submitted is not None and job.batch.started is not None:
                queued = _round(max(job.batch.started - job.host.submitted, 0.0), 3)
            exit_code = job.exit_code if job.exit_code is not None else job.usage.exit_status
            rows.append(
                {
                    "rule": rule,
                    "jobid": job.jobid,
                    "wildcards": dict(job.wildcards),
                    "batch_id": job.batch_id,
                    "status": job.status,
                    "attempts": job.attempts,
                    "exit_code": exit_code,
                    "instance_type": job.instance_type,
                    "instance_estimated": job.instance_estimated,
                    "wall_s": _round(job.usage.wall_s, 3),
                    "queued_s": queued,
                }
            )
    return rows
