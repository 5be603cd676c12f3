"""What spot reclaims took from a run, per rule, against what running on demand would
have cost extra (pure): ``knot report`` lists it, and a run starts on demand a rule whose
reclaims cost more (``run/spot.py``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from .pricing import PriceContext, price_job
from .records import BatchTimes, JobRecord, RunRecord


@dataclass(frozen=True)
class ReclaimCost:
    """One rule's reclaims in earlier runs against what on demand would have cost extra."""

    reclaims: int = 0
    lost_s: float = 0.0
    lost_usd: float = 0.0
    premium_usd: float = 0.0  # on-demand minus spot, for the time its jobs were billed

    def __add__(self, other: ReclaimCost) -> ReclaimCost:
        return ReclaimCost(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple:
        return dataclasses.astuple(self)


def job_reclaims(job: JobRecord, context: PriceContext) -> ReclaimCost:
    """What reclaims took from one job (its reclaimed attempts at spot prices), and what
    on demand would have cost more for the time it was billed."""
    vcpus, memory = job.requested.vcpus, job.requested.memory_mib
    if vcpus is None or memory is None:
        return ReclaimCost(job.reclaims or 0, job.reclaimed_s or 0.0)
    spot = dataclasses.replace(context, market="spot")
    on_demand = dataclasses.replace(context, market="on-demand")
    lost = 0.0
    if job.reclaimed_s:
        reclaimed = dataclasses.replace(job, batch=BatchTimes(0.0, 0.0, job.reclaimed_s))
        lost = _usd(price_job(reclaimed, vcpus, memory, spot))
    premium = _usd(price_job(job, vcpus, memory, on_demand)) - _usd(
        price_job(job, vcpus, memory, spot)
    )
    count, seconds = max(job.reclaims or 0, 0), max(job.reclaimed_s or 0.0, 0.0)
    return ReclaimCost(count, seconds, lost, max(premium, 0.0))


def rule_reclaims(runs: Iterable[RunRecord], context: PriceContext) -> dict[str, ReclaimCost]:
    """Rule -> its reclaims over ``runs``, and the on-demand premium over the same jobs."""
    found: dict[str, ReclaimCost] = {}
    for run in runs:
        for job in run.jobs:
            found[job.rule] = found.get(job.rule, ReclaimCost()) + job_reclaims(job, context)
    return found


def reclaims_field(jobs: Iterable[JobRecord], context: PriceContext) -> dict:
    """The report's ``reclaims`` of one rule: attempts taken back, seconds and USD lost."""
    total = sum((job_reclaims(job, context) for job in jobs), ReclaimCost())
    return {
        "count": total.reclaims,
        "lost_s": round(total.lost_s, 3),
        "lost_usd": round(total.lost_usd, 6),
    }


def _usd(priced: tuple | None) -> float:
    return priced[0] if priced is not None else 0.0
