"""The budget's default ``estimate_in_flight(job) -> USD``: the job's requested vCPUs and
memory, priced at its compute class's instance price (``report/pricing.py``), for the
longest runtime measured for its rule so far in this run or in an earlier run's record
(``.snakemake/knot/run-*.json``), else for its ``runtime`` limit, else for an hour.

It is pluggable: the budget takes any function of an ``InFlightJob`` to US dollars, so a
better forecast can replace this one without touching the gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..aws.clients import Clients
from ..aws.hosts import instance_types
from ..config.classes import ComputeClass
from ..config.settings import KnotConfig
from ..errors import ConfigError, KnotError
from ..report.pricing import (
    InstancePrice,
    PriceContext,
    allowed_type,
    billed_seconds,
    choose_instance,
    job_cost,
    load_prices,
    price_context,
)
from ..report.records import RUN_DIR, Pricing, RunRecord, load_run
from .budget import Budget, InFlightJob

UNKNOWN_RUNTIME_S = 3600  # a rule never measured and without a `runtime` limit
HISTORY_RUNS = 50  # the newest records read; older ones seldom change the longest runtime


def read_history(
    directory: Path = RUN_DIR, warn: Callable[[str], None] = lambda msg: None
) -> list[RunRecord]:
    """The newest run records of ``directory``, oldest first. A record that does not parse
    is skipped, and named through ``warn``."""
    paths = sorted(Path(directory).glob("run-*.json"))[-HISTORY_RUNS:]
    runs = []
    for path in paths:
        try:
            runs.append(load_run(path))
        except ConfigError as exc:
            warn(f"knot: the run's estimates skip the run record {path}: {exc}")
    return runs


def longest_runtimes(runs: Iterable[RunRecord]) -> dict[str, float]:
    """Rule -> the longest time one of its succeeded jobs held an instance in ``runs``."""
    longest: dict[str, float] = {}
    for run in runs:
        for job in run.jobs:
            seconds = billed_seconds(job)
            if seconds is not None and job.status == "SUCCEEDED":
                longest[job.rule] = max(longest.get(job.rule, 0.0), seconds)
    return longest


class LongestRuntime:
    """The default estimate; ``observe`` feeds it the runtimes this run measures."""

    def __init__(
        self, config: KnotConfig, prices: Mapping[str, InstancePrice], history: Mapping
    ) -> None:
        self.config, self.prices = config, prices
        self.longest: dict[str, float] = dict(history)

    def observe(self, rule: str, seconds: float) -> None:
        self.longest[rule] = max(self.longest.get(rule, 0.0), seconds)

    def seconds(self, job: InFlightJob) -> float:
        return self.longest.get(job.rule) or job.limit_s or UNKNOWN_RUNTIME_S

    def __call__(self, job: InFlightJob) -> float:
        klass = self.config.compute_class(job.compute_class) or self.config.default_class
        instance = self._instance(job, klass)
        if instance is None:  # no allowed type in the table: knot cannot price it
            return 0.0
        market = "spot" if klass.spot else "on-demand"
        return job_cost(job.vcpus, job.memory_mib, self.seconds(job), instance, market)

    def _instance(self, job: InFlightJob, klass: ComputeClass) -> InstancePrice | None:
        """The cheapest allowed type that fits, else the largest allowed one (a job that
        fits none is refused before the run; the whole instance is the safe price)."""
        types = klass.instance_types
        found = choose_instance(job.vcpus, job.memory_mib, types, self.prices, job.gpus)
        if found is not None:
            return found.instance
        allowed: Iterable[InstancePrice] = (
            p for p in self.prices.values() if allowed_type(p.name, types)
        )
        return max(allowed, key=lambda p: p.on_demand_usd_hr, default=None)


class EcsInstanceTypes:
    """Container instance ARN -> instance type, one DescribeContainerInstances per instance
    not seen before; a refusal (an older runner policy) leaves the type to the estimate."""

    def __init__(self, ecs_client) -> None:
        self.ecs = ecs_client
        self.known: dict[str, str | None] = {}

    def __call__(self, arn: str) -> str | None:
        if arn not in self.known:
            try:
                self.known[arn] = instance_types(self.ecs, [arn]).get(arn)
            except KnotError:
                self.known[arn] = None
        return self.known[arn]


def run_prices(config: KnotConfig, region: str | None) -> PriceContext:
    """The prices this run is costed with, as its record will tell ``knot report``."""
    market = "spot" if config.spot else "on-demand"
    pricing = Pricing(region, market, config.emulator, config.instance_types)
    return price_context(pricing, load_prices())


def make_budget(
    config: KnotConfig, clients: Clients, history: Iterable[RunRecord]
) -> Budget | None:
    """The run's budget gate with the default estimate, or None without --knot-budget."""
    if config.budget_usd is None:
        return None
    context = run_prices(config, clients.region)
    estimate = LongestRuntime(config, context.prices, longest_runtimes(history))
    return Budget(
        config.budget_usd,
        estimate,
        context,
        instance_type_of=EcsInstanceTypes(clients.ecs),
        observe_runtime=estimate.observe,
    )
