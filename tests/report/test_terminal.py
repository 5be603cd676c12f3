"""The per-rule table printed when a run ends."""

from __future__ import annotations

from snakemake_executor_knot.report.records import parse_run
from snakemake_executor_knot.report.terminal import run_summary

from . import samples


def test_the_summary_has_a_row_per_rule_in_dag_order_and_the_totals():
    record = samples.three_rules()
    record["rule_order"] = ["prep", "fit", "plot"]
    record["ended"] = samples.STARTED + 3725.0
    lines = run_summary(parse_run(record))
    assert lines[0].split() == ["rule", "jobs", "failed", "retries", "wall", "cost"]
    assert [line.split()[0] for line in lines[1:4]] == ["prep", "fit", "plot"]
    assert lines[1].split()[1:4] == ["2", "0", "0"]
    assert lines[2].split()[1:4] == ["1", "1", "1"]  # fit: failed after a retry
    assert lines[-1].startswith("wall time 62m 05s, cost $")
    assert f"'knot report {samples.RUN_ID}'" in lines[-1]


def test_columns_line_up():
    lines = run_summary(parse_run(samples.three_rules()))
    ends = {len(line) for line in lines[:-1]}
    assert len(ends) == 1  # right-aligned numbers: every row as wide as the header's
