"""The per-rule table on a three-rule run, priced with a small fixed table."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.report.pricing import (
    InstancePrice,
    PriceTable,
    load_prices,
    price_context,
    prices_note,
)
from snakemake_executor_knot.report.records import parse_run
from snakemake_executor_knot.report.table import rule_rows, total_cost

from . import samples

PRICES = {
    p.name: p
    for p in (
        InstancePrice("c5.large", 2, 4, 0, 0.085, 0.03),
        InstancePrice("m5.large", 2, 8, 0, 0.096, 0.0336),
        InstancePrice("r5.large", 2, 16, 0, 0.126, 0.0441),
    )
}
TABLE = PriceTable("2025-01-01", "test prices", 0.35, {"us-east-1": PRICES})


def _rows(record: dict) -> list[dict]:
    run = parse_run(record)
    return rule_rows(run, price_context(run.pricing, TABLE))


def test_rule_rows_on_three_rules():
    rows = _rows(samples.three_rules())
    assert [row["rule"] for row in rows] == ["prep", "fit", "plot"]
    assert all(set(row) >= samples.REQUIRED for row in rows)
    prep, fit, plot = rows
    # Two 1-vCPU/2 GiB jobs for an hour each: half a c5.large (0.085/h) each.
    assert prep == {
        "rule": "prep",
        "jobs": 2,
        "wall_s": 6000.0,
        "cpu_s": 3000.0,
        "peak_rss_mb": 1500.0,
        "requested_mem_mb": 2048,
        "suggested_mem_mb": 2048,  # 1500 x 1.25 = 1875 -> 2048
        "mem_usage": 0.732,
        "requested_threads": 1,
        "suggested_threads": 1,
        "vcpu_usage": 0.5,
        "failures": 0,
        "retries": 0,
        "reclaims": {"count": 0, "lost_s": 0.0, "lost_usd": 0.0},
        "cost_usd": 0.085,
        "cost_usd_if_resized": 0.085,
        "cost_estimated": True,
        "unpriced_jobs": 0,
        "instance_types": ["c5.large"],
    }
    # 2 vCPU/8 GiB for half an hour fills an m5.large; resized to 4 GiB it fits a c5.large.
    assert (fit["cost_usd"], fit["cost_usd_if_resized"]) == (0.048, 0.0425)
    assert (fit["suggested_mem_mb"], fit["suggested_threads"]) == (4096, 2)
    assert (fit["failures"], fit["retries"], fit["vcpu_usage"]) == (1, 1, 1.0)
    # Batch reported r5.large: half of it (by vCPU) for half an hour, not an estimate.
    assert plot["cost_usd"] == pytest.approx(0.0315)
    assert plot["cost_usd_if_resized"] == pytest.approx(0.0315)
    assert (plot["cost_estimated"], plot["instance_types"]) == (False, ["r5.large"])
    assert (plot["suggested_mem_mb"], plot["suggested_threads"], plot["wall_s"]) == (None,) * 3
    assert total_cost(rows) == pytest.approx(0.1645)


def test_time_and_money_lost_to_spot_reclaims_per_rule():
    """Two reclaimed attempts of 10 minutes each, on the job's m5.large at spot prices."""
    reclaimed = {"count": 2, "seconds": 1200.0}
    record = samples.run(
        [
            samples.job(1, "fit", instance_type="m5.large", reclaims=reclaimed),
            samples.job(2, "fit", instance_type="m5.large"),
            samples.job(3, "plot"),
        ]
    )
    rows = {row["rule"]: row for row in _rows(record)}
    lost = PRICES["m5.large"].spot_usd_hr * 1200 / 3600  # 2 vCPU / 8 GiB fill an m5.large
    assert rows["fit"]["reclaims"] == {
        "count": 2,
        "lost_s": 1200.0,
        "lost_usd": pytest.approx(lost, abs=1e-6),
    }
    assert rows["plot"]["reclaims"] == {"count": 0, "lost_s": 0.0, "lost_usd": 0.0}


def test_jobs_without_a_request_or_duration_are_unpriced():
    record = samples.run(
        [
            samples.job(1, "a", requested=None),
            samples.job(2, "a", batch=None, usage={"wall_s": None}),
        ]
    )
    [row] = _rows(record)
    assert (row["cost_usd"], row["unpriced_jobs"], row["requested_threads"]) == (None, 2, 2)
    assert total_cost([row]) == 0


def test_default_prices_come_from_the_shipped_table():
    run = parse_run(samples.run([samples.job()]))
    [row] = rule_rows(run)
    # 2 vCPU/8 GiB, Batch start to stop 19 s: a whole m5.large (or m6i.large) at spot price.
    spot = load_prices().regions["us-east-1"]["m5.large"].spot_usd_hr
    assert row["cost_usd"] == pytest.approx(spot * 19 / 3600, abs=1e-6)
    assert row["instance_types"] in (["m5.large"], ["m6i.large"])


def test_prices_note_says_where_prices_came_from():
    run = parse_run(
        samples.run(
            [samples.job()], pricing={"region": "ap-east-1", "market": "spot", "emulator": True}
        )
    )
    note = prices_note(price_context(run.pricing, TABLE), estimated=True)
    assert "Spot prices for us-east-1 from knot's price table of 2025-01-01" in note
    assert "0.35 x on-demand" in note
    assert "no ap-east-1" in note
    assert "an estimate" in note
    assert "emulator" in note


def test_a_type_the_record_marks_estimated_is_priced_as_an_estimate():
    # The emulator's record: the type the compute environment would have chosen.
    job = samples.job(instance_type="m5.large", instance_type_source="estimate")
    [row] = rule_rows(parse_run(samples.run([job])))
    assert row["cost_estimated"] is True
    assert row["instance_types"] in (["m5.large"], ["m6i.large"])
    reported = samples.job(instance_type="r5.large", instance_type_source="batch")
    [row] = rule_rows(parse_run(samples.run([reported])))
    assert (row["cost_estimated"], row["instance_types"]) == (False, ["r5.large"])
