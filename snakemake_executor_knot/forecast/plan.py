"""A run's forecast from its jobs and the history (pure): per job, per rule and in total.

Jobs are forecast in DAG order, so a job whose input another job of the plan writes gets
that job's predicted output bytes (split evenly over its output files) as its input size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..compute.resources import BatchResources
from ..config.settings import KnotConfig
from ..report.pricing import PriceTable, choose_instance, region_prices
from .critical import Node, critical_path, makespan, topological
from .history import History
from .predict import (
    AS_IS,
    SCALED,
    UNKNOWN,
    ZERO,
    JobForecast,
    JobRequest,
    Range,
    predict_job,
    rule_model,
)


@dataclass(frozen=True)
class PlannedJob:
    """One job Snakemake would run: its rule, the jobs it waits for, its files (the sizes
    of inputs no job of the plan writes: None when not known here) and its Batch request."""

    id: int
    rule: str
    after: tuple[int, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    sizes: Mapping[str, float | None]
    request: BatchResources


@dataclass
class RulePlan:
    rule: str
    jobs: int = 0
    kinds: set[str] = field(default_factory=set)
    samples: int = 0
    seconds: Range = ZERO
    vcpu_hours: Range = ZERO
    cost_usd: Range = ZERO
    peak_rss_mb: Range | None = None
    requested_memory_mib: float = 0.0

    @property
    def kind(self) -> str:
        """unknown, scaled or as-is; "scaled" when any job was scaled by its input."""
        if UNKNOWN in self.kinds:
            return UNKNOWN
        return SCALED if SCALED in self.kinds else AS_IS


@dataclass
class Plan:
    rules: list[RulePlan]
    wall_s: Range
    critical_path: list[str]  # rule names along it
    startup_s: float
    market: dict[str, str]  # class -> market
    region: str
    skipped: list[tuple[str, str]]
    runs: int

    @property
    def cost_usd(self) -> Range:
        """The rules with a history; ``unknown_cost_usd`` bounds the rest."""
        return _total(r.cost_usd for r in self.rules if r.kind != UNKNOWN)

    @property
    def vcpu_hours(self) -> Range:
        return _total(r.vcpu_hours for r in self.rules if r.kind != UNKNOWN)

    @property
    def unknown_cost_usd(self) -> float:
        """The most the rules without history cost: their requests at their runtime limits
        (``inf`` when one has none)."""
        return sum(r.cost_usd.high for r in self.rules if r.kind == UNKNOWN)

    @property
    def unknown(self) -> list[str]:
        return [r.rule for r in self.rules if r.kind == UNKNOWN]


def make_plan(
    jobs: Sequence[PlannedJob],
    history: History,
    config: KnotConfig,
    table: PriceTable,
    max_jobs: int | None = None,
) -> Plan:
    """Forecast ``jobs`` from ``history``, priced from ``table`` in ``config``'s region."""
    region, prices = region_prices(table, config.region)
    models = {rule: rule_model(rule, history.of(rule)) for rule in {j.rule for j in jobs}}
    sizes: dict[int, float | None] = {}
    forecasts = _forecast_jobs(jobs, models, config, prices, sizes)
    rules: dict[str, RulePlan] = {}
    by_id = {job.id: job for job in jobs}
    # Rules in the order the DAG first reaches them.
    for node in topological([Node(j.id, j.after, 0.0) for j in jobs]):
        job = by_id[node.id]
        _add(rules.setdefault(job.rule, RulePlan(job.rule)), job, forecasts[job.id], models)
    wall, path = _wall(jobs, forecasts, sizes, config, max_jobs, history)
    return Plan(
        rules=list(rules.values()),
        wall_s=wall,
        critical_path=[by_id[i].rule for i in path],
        startup_s=history.startup_s(),
        market={c.name: "spot" if c.spot else "on-demand" for c in config.compute_classes},
        region=region,
        skipped=list(history.skipped),
        runs=len({s.run_id for samples in history.samples.values() for s in samples}),
    )


def _forecast_jobs(jobs, models, config: KnotConfig, prices, sizes: dict) -> dict[int, JobForecast]:
    """Each job's forecast; ``sizes`` gets each job's input bytes (None: not known)."""
    written: dict[str, float | None] = {}  # output path -> predicted bytes
    out: dict[int, JobForecast] = {}
    by_id = {j.id: j for j in jobs}
    for node in topological([Node(j.id, j.after, 0.0) for j in jobs]):
        planned = by_id[node.id]
        sizes[planned.id] = input_bytes(planned, written)
        forecast = predict_job(
            models[planned.rule], sizes[planned.id], request(planned, config, prices)
        )
        out[planned.id] = forecast
        share = None
        if forecast.output_bytes is not None and planned.outputs:
            share = forecast.output_bytes / len(planned.outputs)
        written.update(dict.fromkeys(planned.outputs, share))
    return out


def input_bytes(job: PlannedJob, written: Mapping[str, float | None]) -> float | None:
    """The job's input bytes: predicted for files the plan writes, measured for the rest;
    None when any is not known. A job without input has 0."""
    total = 0.0
    for path in job.inputs:
        size = written[path] if path in written else job.sizes.get(path)
        if size is None:
            return None
        total += size
    return total


def request(job: PlannedJob, config: KnotConfig, prices) -> JobRequest:
    """The job's request priced on the cheapest type its class may launch that fits it, in
    its class's market (as the run record estimates it on the emulator)."""
    size = job.request
    klass = config.compute_class(size.compute_class) or config.default_class
    choice = choose_instance(size.vcpus, size.memory_mib, klass.instance_types, prices, size.gpus)
    return JobRequest(
        vcpus=size.vcpus,
        memory_mib=size.memory_mib,
        instance=choice.instance if choice else None,
        market="spot" if klass.spot else "on-demand",
        timeout_s=size.timeout_s,
    )


def _add(rule: RulePlan, job: PlannedJob, forecast: JobForecast, models) -> None:
    rule.jobs += 1
    rule.kinds.add(forecast.kind)
    rule.samples = models[job.rule].seconds.samples if models[job.rule].seconds else 0
    rule.seconds += forecast.seconds
    rule.vcpu_hours += forecast.vcpu_hours
    rule.cost_usd += forecast.cost_usd
    rule.peak_rss_mb = models[job.rule].peak_rss_mb
    rule.requested_memory_mib = max(rule.requested_memory_mib, job.request.memory_mib)


def _wall(jobs, forecasts, sizes, config: KnotConfig, max_jobs, history: History):
    """The run's wall time: start-up, the schedule of the jobs' waits at the classes'
    maxvcpus and ``max_jobs``, closing; and the critical path at the middle forecast.

    When fewer jobs may run than are ready, the order they start in matters, and Snakemake's
    default (ILP) scheduler does not promise one: the range spans the schedule that starts
    larger inputs first and the one that starts them last, and the middle is between them."""
    caps = {c.name: float(c.max_vcpus) for c in config.compute_classes}
    ends: dict[str, list[float]] = {}
    for pick in ("low", "mid", "high"):
        nodes = [_node(j, getattr(forecasts[j.id].latency_s, pick), sizes) for j in jobs]
        ends[pick] = [makespan(nodes, caps, max_jobs, first) for first in (True, False)]
    _, path = critical_path([_node(j, forecasts[j.id].latency_s.mid, sizes) for j in jobs])
    around = history.startup_s() + history.closing_s()
    low, mid, high = min(ends["low"]), sum(ends["mid"]) / 2, max(ends["high"])
    return Range(low + around, mid + around, high + around), path


def _node(job: PlannedJob, seconds: float, sizes: Mapping[int, float | None]) -> Node:
    # An unknown job's middle is not a number: it counts as nothing there (the plan names it).
    seconds = 0.0 if math.isnan(seconds) else seconds
    size = sizes.get(job.id) or 0.0
    return Node(job.id, job.after, seconds, job.request.vcpus, job.request.compute_class, size)


def _total(ranges) -> Range:
    total = ZERO
    for item in ranges:
        total += item
    return total
