"""Spot that learns from reclaims.

- A job spot reclaimed on every attempt its job definition allows (``--knot-spot-retries``
  retries) ends FAILED with Batch's "Host EC2 (instance ...) terminated."; knot then
  submits it again, alone, to its class's on-demand queue (``on_demand_request``). An
  array child keeps its spec record through ``KNOT_SPEC_INDEX``, since Batch reserves
  the ``AWS_BATCH_`` names.
- A rule whose earlier runs (``.snakemake/knot/run-*.json``) lost more to reclaims than
  running on demand would have cost extra starts on demand (``on_demand_rules``).
"""

from __future__ import annotations

import copy

from ..aws.status import FAILED, JobState, is_reclaim
from ..report.reclaims import ReclaimCost
from ..runtime.contract import SPEC_INDEX_ENV

MAX_JOB_NAME = 128  # Batch's limit on job names
ON_DEMAND_SUFFIX = "-ondemand"


def reclaimed_out(state: JobState) -> bool:
    """Whether the job failed because spot took its instance on its last attempt (Batch
    retried it as the job definition allows, and no attempt was left)."""
    return state.status == FAILED and is_reclaim(state.reason)


def on_demand_request(request: dict, index: int | None, queue: str) -> dict:
    """The SubmitJob request of a job (an array child: ``index``) again, as a single job in
    ``queue``, reading the same spec record."""
    again = copy.deepcopy(request)
    again.pop("arrayProperties", None)
    again["jobQueue"] = queue
    name = again["jobName"][: MAX_JOB_NAME - len(ON_DEMAND_SUFFIX)]
    again["jobName"] = name + ON_DEMAND_SUFFIX
    if index is not None:
        environment = again["containerOverrides"]["environment"]
        environment.append({"name": SPEC_INDEX_ENV, "value": str(index)})
    return again


def on_demand_rules(costs: dict[str, ReclaimCost]) -> dict[str, str]:
    """Rule -> the line that says why it starts on demand: reclaims cost it more than
    on demand would have."""
    return {
        rule: (
            f"knot: rule {rule} starts on demand: in earlier runs spot reclaimed it "
            f"{cost.reclaims} time(s), losing {cost.lost_s:.0f} s and ${cost.lost_usd:.4f}, "
            f"more than the ${cost.premium_usd:.4f} on demand would have cost extra"
        )
        for rule, cost in sorted(costs.items())
        if cost.reclaims and cost.lost_usd > cost.premium_usd
    }
