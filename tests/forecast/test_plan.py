"""A run's forecast from planned jobs and history: per rule, in total, and with no history."""

from __future__ import annotations

import math

import pytest

from snakemake_executor_knot.compute.resources import BatchResources
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.forecast.history import History, RunTimes, Sample
from snakemake_executor_knot.forecast.plan import PlannedJob, make_plan
from snakemake_executor_knot.forecast.render import plan_json, plan_text
from snakemake_executor_knot.report.pricing import job_cost, load_prices

TABLE = load_prices()
SMALL = BatchResources(vcpus=1, memory_mib=2048, gpus=0, timeout_s=600)


def job(id: int, rule: str, after=(), inputs=(), outputs=(), sizes=None) -> PlannedJob:
    return PlannedJob(id, rule, tuple(after), tuple(inputs), tuple(outputs), sizes or {}, SMALL)


def fan_out(n: int) -> list[PlannedJob]:
    """split writes n parts; work i reads part i (its size from split's output); merge."""
    parts = [f"part/{i}" for i in range(n)]
    jobs = [job(1, "split", inputs=["data"], outputs=parts, sizes={"data": n * 1e6})]
    jobs += [job(10 + i, "work", [1], [parts[i]], [f"out/{i}"]) for i in range(n)]
    jobs.append(job(99, "merge", [10 + i for i in range(n)], [f"out/{i}" for i in range(n)]))
    return jobs


def history() -> History:
    work = [
        Sample("r", "work", s, latency_s=s + 4, input_bytes=b, output_bytes=100)
        for s, b in ((11, 1e6), (21, 2e6), (41, 4e6))
    ]
    split = [Sample("r", "split", 5.0, latency_s=9.0, input_bytes=7e6, output_bytes=7e6)]
    return History(
        samples={"work": work, "split": split},
        runs=[RunTimes("r", startup_s=20.0, closing_s=3.0)],
    )


def test_fan_out_forecast_per_rule_and_total():
    config = KnotConfig(spot=False, instance_types=("m5",), max_vcpus=256)
    plan = make_plan(fan_out(4), history(), config, TABLE)
    rules = {r.rule: r for r in plan.rules}
    assert [r.rule for r in plan.rules] == ["split", "work", "merge"]
    assert rules["split"].kind == "as-is" and rules["work"].kind == "scaled"
    assert rules["merge"].kind == "unknown"
    # split's 7 MB output (as measured) is split over 4 parts: 1.75 MB each, 18.5 s of work.
    assert rules["work"].seconds.mid == pytest.approx(4 * 18.5, rel=0.01)
    m5 = TABLE.regions["us-east-1"]["m5.large"]
    expected = job_cost(1, 2048, 5.0 + 4 * 18.5, m5, "on-demand")
    assert plan.cost_usd.mid == pytest.approx(expected, rel=0.01)
    assert plan.unknown == ["merge"]
    assert plan.unknown_cost_usd == pytest.approx(job_cost(1, 2048, 600, m5, "on-demand"))
    # start-up, split's wait, one work job's wait (all in parallel), merge (unknown: 0), closing
    assert plan.wall_s.mid == pytest.approx(20 + 9 + 22.5 + 0 + 3, rel=0.01)
    assert plan.wall_s.high >= plan.wall_s.mid + 600
    assert plan.critical_path[:2] == ["split", "work"]


def test_maxvcpus_and_jobs_limit_the_wall_time():
    narrow = make_plan(fan_out(4), history(), KnotConfig(max_vcpus=1), TABLE)
    limited = make_plan(fan_out(4), history(), KnotConfig(), TABLE, max_jobs=2)
    wide = make_plan(fan_out(4), history(), KnotConfig(), TABLE)
    assert narrow.wall_s.mid == pytest.approx(wide.wall_s.mid + 3 * 22.5, rel=0.01)
    assert limited.wall_s.mid == pytest.approx(wide.wall_s.mid + 22.5, rel=0.01)


def test_the_range_spans_either_order_of_jobs_that_wait_for_a_slot():
    """Two slots, inputs of 1, 2 and 6 MB (work takes 1 + 10 s per MB, a wait 4 s longer):
    the 6 MB job (65 s) started first ends the work at 65 s; started after the 1 MB one
    (15 s) has freed its slot, at 80 s."""
    parts = {f"in/{mb}": mb * 1e6 for mb in (1, 2, 6)}
    jobs = [job(i, "work", inputs=[p], outputs=[f"out/{i}"], sizes=parts) for i, p in
            enumerate(parts)]  # fmt: skip
    plan = make_plan(jobs, history(), KnotConfig(), TABLE, max_jobs=2)
    around = 20 + 3
    first, last = 65 + around, 15 + 65 + around
    assert plan.wall_s.low < first and plan.wall_s.high > last
    assert plan.wall_s.mid == pytest.approx((first + last) / 2, rel=0.01)


def test_no_history_lists_every_rule_unknown_with_its_bound():
    plan = make_plan(fan_out(2), History(), KnotConfig(), TABLE)
    assert plan.unknown == ["split", "work", "merge"]
    assert plan.cost_usd.mid == 0 and math.isfinite(plan.unknown_cost_usd)
    text = plan_text(plan)
    assert "never ran: unknown" in text and "at their runtime limits" in text
    doc = plan_json(plan)
    assert [r["forecast"] for r in doc["rules"]] == ["unknown"] * 3
    assert doc["rules"][1]["cost_usd"]["mid"] is None
    assert doc["total"]["unknown_cost_usd_at_most"] > 0


def test_text_and_json_state_how_each_rule_was_forecast():
    hist = history()
    hist.skipped.append(("run-x.json", "not valid JSON"))
    plan = make_plan(fan_out(4), hist, KnotConfig(), TABLE)
    text = plan_text(plan)
    assert "scaled by input bytes (3 sample(s))" in text
    assert "as measured (1 sample(s))" in text
    assert "skipped run-x.json: not valid JSON" in text
    assert "critical path: split -> work -> merge" in text
    doc = plan_json(plan)
    assert doc["skipped_records"] == [{"path": "run-x.json", "why": "not valid JSON"}]
    assert (
        doc["total"]["jobs"] == 6 and doc["total"]["wall_s"]["low"] <= doc["total"]["wall_s"]["mid"]
    )
