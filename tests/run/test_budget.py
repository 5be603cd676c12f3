"""--knot-budget's gate and its default estimate (pure, over knot's price table): the gate
closes on the job that would pass the budget and stays closed; a finished job's spend is
the report's price for it; the estimate takes the longest runtime measured for the rule."""

from __future__ import annotations

import json

import pytest

from snakemake_executor_knot.aws.status import JobState
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.report.pricing import (
    choose_instance,
    job_cost,
    load_prices,
    price_context,
)
from snakemake_executor_knot.report.records import Pricing, parse_run
from snakemake_executor_knot.report.table import rule_rows, total_cost
from snakemake_executor_knot.run.budget import Budget, InFlightJob
from snakemake_executor_knot.run.estimate import (
    UNKNOWN_RUNTIME_S,
    LongestRuntime,
    longest_runtimes,
    read_history,
)
from snakemake_executor_knot.run.progress import Progress
from tests.report import samples

CONTEXT = price_context(Pricing("us-east-1", "spot", True, ("optimal",)), load_prices())


def _job(jobid: int, rule: str = "fit", vcpus: int = 2, limit_s: int | None = 600) -> InFlightJob:
    return InFlightJob(rule, jobid, vcpus, 4096, 0, "default", limit_s)


def _budget(limit: float, costs: dict[int, float]) -> Budget:
    """A budget whose estimate is ``costs[jobid]``."""
    return Budget(limit, lambda job: costs[job.jobid], CONTEXT)


def test_the_gate_admits_jobs_until_one_would_pass_the_budget_then_stays_closed():
    budget = _budget(1.0, {1: 0.4, 2: 0.5, 3: 0.2, 4: 0.01, 5: 0.01})
    admitted, line = budget.admit([_job(1), _job(2)])
    assert admitted == [0, 1] and line is None
    for batch_id, job in (("b1", _job(1)), ("b2", _job(2))):
        budget.submitted(batch_id, job)
    assert budget.in_flight == pytest.approx(0.9)
    # 0.9 in flight + 0.2 would pass 1.0: refused, and so is the cheaper job after it.
    admitted, line = budget.admit([_job(3), _job(4)])
    assert admitted == [] and budget.closed
    assert line == (
        "knot: budget reached: spent $0.0000 so far, $0.9000 predicted for 2 job(s) in "
        "flight, $1.0000 budget; submitting no new job (jobs in flight finish and are kept)"
    )
    # Said once: later refusals add no line, even for a job that would fit now.
    assert budget.admit([_job(5)]) == ([], None)
    assert [job.jobid for job in budget.refused] == [3, 4, 5]


def test_a_finished_job_costs_what_the_report_says_it_cost():
    record = samples.run([samples.job(7, "fit", batch=samples.timed(0, 1800))])
    report_cost = total_cost(rule_rows(parse_run(record), CONTEXT))
    budget = _budget(10.0, {7: 5.0})
    budget.submitted("b7", InFlightJob("fit", 7, 2, 8192, 0, "default", None))
    times = record["jobs"][0]["batch"]
    budget.observe([JobState("b7", "SUCCEEDED", **times)])
    assert report_cost > 0 and budget.spent == pytest.approx(report_cost)
    assert budget.in_flight == 0 and dict(budget.ran) == {"fit": 1}
    assert budget.status() == f"spent ${report_cost:.4f} of $10.0000 budget"


def test_a_job_that_never_started_costs_nothing_and_a_running_one_stays_in_flight():
    budget = _budget(1.0, {1: 0.3, 2: 0.4})
    budget.submitted("b1", _job(1))
    budget.submitted("b2", _job(2))
    budget.observe([JobState("b1", "FAILED"), JobState("b2", "RUNNING", started=1.0)])
    assert budget.spent == 0.0 and budget.in_flight == pytest.approx(0.4)


def test_the_summary_says_what_ran_what_did_not_and_the_spend():
    budget = _budget(0.5, {1: 0.3, 2: 0.3, 3: 0.3})
    assert budget.summary() is None
    budget.admit([_job(1, "prep")])
    budget.submitted("b1", _job(1, "prep"))
    budget.admit([_job(2, "fit"), _job(3, "fit")])
    budget.observe([JobState("b1", "SUCCEEDED", created=0.0, started=0.0, stopped=60.0)])
    summary = budget.summary()
    assert summary is not None
    assert summary.startswith("knot: budget of $0.5000 reached: spent $0.0")
    assert "ran prep x1; not submitted: fit x2, and the jobs that need their outputs" in summary
    assert "--knot-budget" in summary


def test_the_progress_line_shows_the_spend_against_the_budget():
    lines: list[str] = []
    budget = _budget(2.0, {})
    Progress(lines.append, budget.status).update([JobState("b1", "RUNNING")])
    assert lines == ["knot: Batch jobs: 1 RUNNING; spent $0.0000 of $2.0000 budget"]


def _priced(seconds: float, vcpus: int = 2) -> float:
    found = choose_instance(vcpus, 4096, ("optimal",), CONTEXT.prices)
    assert found is not None
    return job_cost(vcpus, 4096, seconds, found.instance, "spot")


def test_the_estimate_takes_the_longest_runtime_measured_else_the_limit_else_an_hour():
    estimate = LongestRuntime(KnotConfig(), CONTEXT.prices, {"fit": 120.0})
    assert estimate(_job(1, "fit")) == pytest.approx(_priced(120.0))
    assert estimate(_job(2, "plot", limit_s=600)) == pytest.approx(_priced(600))
    assert estimate(_job(3, "plot", limit_s=None)) == pytest.approx(_priced(UNKNOWN_RUNTIME_S))
    estimate.observe("fit", 300.0)
    estimate.observe("fit", 200.0)
    assert estimate(_job(4, "fit")) == pytest.approx(_priced(300.0))


def test_an_on_demand_class_is_priced_on_demand():
    config = KnotConfig(spot=False)
    estimate = LongestRuntime(config, CONTEXT.prices, {})
    found = choose_instance(2, 4096, ("optimal",), CONTEXT.prices)
    assert found is not None
    expected = job_cost(2, 4096, 600, found.instance, "on-demand")
    assert estimate(_job(1)) == pytest.approx(expected) and expected > _priced(600)


def test_history_gives_the_longest_succeeded_runtime_and_names_a_record_it_skips(tmp_path):
    older = samples.run(
        [
            samples.job(1, "fit", batch=samples.timed(0, 100)),
            samples.job(2, "fit", batch=samples.timed(0, 400), status="FAILED"),
        ],
        run_id="20261201T100000-aaaaaaaa",
    )
    newer = samples.run(
        [samples.job(1, "fit", batch=samples.timed(0, 250))], run_id="20261202T100000-bbbbbbbb"
    )
    for record in (older, newer):
        (tmp_path / f"run-{record['run_id']}.json").write_text(json.dumps(record))
    (tmp_path / "run-20261203T100000-cccccccc.json").write_text("{not json")
    warnings: list[str] = []
    assert longest_runtimes(read_history(tmp_path, warnings.append)) == {"fit": 250.0}
    assert len(warnings) == 1 and "run-20261203T100000-cccccccc.json" in warnings[0]
