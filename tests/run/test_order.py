"""The rules of a run in DAG order, from the jobs' inputs and outputs."""

from __future__ import annotations

from types import SimpleNamespace

from snakemake_executor_knot.run.order import dag_order


def _job(jobid: int, rule: str, inputs=(), outputs=()) -> SimpleNamespace:
    return SimpleNamespace(jobid=jobid, rule=SimpleNamespace(name=rule), input=list(inputs),
                           output=list(outputs))  # fmt: skip


def test_a_rule_comes_after_the_rules_it_reads_whatever_the_jobids():
    jobs = [
        _job(1, "group_stats", ["s/01.txt", "s/02.txt"], ["all.txt"]),
        _job(2, "simulate", [], ["raw.txt"]),
        _job(3, "mask", ["raw.txt"], ["s/01.txt"]),
        _job(4, "mask", ["raw.txt"], ["s/02.txt"]),
        _job(5, "plot", ["all.txt", "raw.txt"], ["plot.png"]),
        _job(6, "annotate", [], ["notes.txt"]),
    ]
    assert dag_order(jobs) == ["annotate", "simulate", "mask", "group_stats", "plot"]


def test_a_rule_at_two_depths_is_placed_by_its_shallowest_job():
    jobs = [
        _job(1, "step", [], ["a"]),
        _job(2, "step", ["a"], ["b"]),
        _job(3, "merge", ["b"], ["c"]),
    ]
    assert dag_order(jobs) == ["step", "merge"]


def test_a_chain_thousands_deep_needs_no_recursion():
    jobs = [_job(i, f"r{i % 3}", [f"f{i - 1}"] if i else [], [f"f{i}"]) for i in range(5000)]
    assert dag_order(reversed(jobs)) == ["r0", "r1", "r2"]
