"""Spot that learns (pure): a reclaimed-out job's request again, on demand; which rules
start on demand after their reclaims; reclaims read from Batch's attempts."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.aws.status import JobState, state_from_description
from snakemake_executor_knot.report.pricing import load_prices, price_context
from snakemake_executor_knot.report.reclaims import ReclaimCost, rule_reclaims
from snakemake_executor_knot.report.records import Pricing, parse_run
from snakemake_executor_knot.run.spot import on_demand_request, on_demand_rules, reclaimed_out
from tests.report import samples

REASON = "Host EC2 (instance i-0123456789abcdef0) terminated."
CONTEXT = price_context(Pricing("us-east-1", "spot", False, ("optimal",)), load_prices())


def test_only_a_failure_by_reclaim_is_reclaimed_out():
    assert reclaimed_out(JobState("j", "FAILED", REASON))
    assert not reclaimed_out(JobState("j", "FAILED", "Essential container in task exited"))
    assert not reclaimed_out(JobState("j", "SUCCEEDED", REASON))
    assert not reclaimed_out(JobState("j", "FAILED"))


def _request() -> dict:
    return {
        "jobName": "x" * 128,
        "jobQueue": "arn:queue/spot-first",
        "jobDefinition": "arn:def",
        "arrayProperties": {"size": 5},
        "containerOverrides": {"environment": [{"name": "KNOT_SPEC_URI", "value": "s3://b/k"}]},
        "tags": {"knot:rule": "fit"},
    }


def test_the_request_again_is_a_single_job_on_demand_reading_its_own_record():
    request = _request()
    again = on_demand_request(request, 3, "arn:queue/on-demand")
    assert again["jobQueue"] == "arn:queue/on-demand" and "arrayProperties" not in again
    assert len(again["jobName"]) == 128 and again["jobName"].endswith("-ondemand")
    assert again["containerOverrides"]["environment"][-1] == {
        "name": "KNOT_SPEC_INDEX",
        "value": "3",
    }
    assert again["tags"] == request["tags"]
    assert "arrayProperties" in request and len(request["containerOverrides"]["environment"]) == 1
    single = on_demand_request({**_request(), "arrayProperties": None}, None, "q")
    assert [e["name"] for e in single["containerOverrides"]["environment"]] == ["KNOT_SPEC_URI"]


def test_reclaims_are_counted_from_batchs_attempts():
    state = state_from_description(
        {
            "jobId": "j",
            "status": "FAILED",
            "statusReason": REASON,
            "attempts": [
                {"startedAt": 1000, "stoppedAt": 11000, "statusReason": REASON},
                {"startedAt": 12000, "stoppedAt": 17000, "statusReason": REASON},
                {"startedAt": 18000, "stoppedAt": 19000, "statusReason": "Essential container"},
            ],
        }
    )
    assert (state.reclaims, state.reclaimed_s) == (2, 15.0)


def _history(reclaimed_s: float, billed_s: float) -> dict[str, ReclaimCost]:
    reclaimed = {"count": 2, "seconds": reclaimed_s}
    record = samples.run(
        [
            samples.job(1, "fit", batch=samples.timed(0, billed_s), reclaims=reclaimed),
            samples.job(2, "plot", batch=samples.timed(0, billed_s)),
        ]
    )
    return rule_reclaims([parse_run(record)], CONTEXT)


def test_a_rule_whose_reclaims_cost_more_than_on_demand_starts_on_demand():
    costs = _history(reclaimed_s=3600, billed_s=600)
    fit = costs["fit"]
    # Spot is 0.35 of on-demand in knot's table: an hour lost at spot is more than ten
    # minutes' premium (0.65 of on-demand).
    assert fit.lost_usd == pytest.approx(fit.premium_usd * 0.35 * 3600 / (0.65 * 600))
    assert on_demand_rules(costs) == {
        "fit": (
            f"knot: rule fit starts on demand: in earlier runs spot reclaimed it 2 time(s), "
            f"losing 3600 s and ${fit.lost_usd:.4f}, more than the ${fit.premium_usd:.4f} "
            "on demand would have cost extra"
        )
    }


def test_a_rule_whose_reclaims_cost_less_stays_on_spot():
    assert on_demand_rules(_history(reclaimed_s=60, billed_s=3600)) == {}
