"""The DAG's critical path and its schedule under maxvcpus and --jobs."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.forecast.critical import Node, critical_path, makespan, topological


def diamond() -> list[Node]:
    return [
        Node(4, (2, 3), 5.0),
        Node(2, (1,), 10.0),
        Node(3, (1,), 30.0),
        Node(1, (), 1.0),
    ]


def test_critical_path_follows_the_longest_chain():
    length, path = critical_path(diamond())
    assert (length, path) == (36.0, [1, 3, 4])


def test_makespan_without_limits_is_the_critical_path():
    assert makespan(diamond(), {}) == 36.0


def test_maxvcpus_serialises_a_fan_out():
    fan = [Node(i, (), 10.0, vcpus=2) for i in range(6)]
    assert makespan(fan, {"default": 4}) == 30.0  # two at a time
    assert makespan(fan, {"default": 12}) == 10.0
    assert makespan(fan, {"default": 12}, max_jobs=3) == 20.0


def test_a_job_larger_than_its_class_runs_alone():
    assert makespan([Node(1, (), 10.0, vcpus=8), Node(2, (), 5.0, vcpus=8)], {"default": 4}) == 15


def test_classes_are_limited_apart():
    jobs = [Node(1, (), 10.0, 4, "default"), Node(2, (), 10.0, 4, "gpu")]
    assert makespan(jobs, {"default": 4, "gpu": 4}) == 10.0


def test_dependencies_outside_the_dag_are_done():
    assert critical_path([Node(2, (99,), 3.0)]) == (3.0, [2])
    assert makespan([Node(2, (99,), 3.0)], {}) == 3.0


def test_a_cycle_is_refused():
    with pytest.raises(ValueError, match="cycle"):
        topological([Node(1, (2,), 1.0), Node(2, (1,), 1.0)])


def test_ready_jobs_start_larger_input_first_as_snakemakes_scheduler_does():
    # Two slots; the long job has the larger input and starts first: 40 s, not 10 + 40.
    jobs = [Node(1, (), 10.0, input_bytes=1), Node(2, (), 10.0, input_bytes=2)]
    jobs.append(Node(3, (), 40.0, input_bytes=9))
    assert makespan(jobs, {}, max_jobs=2) == 40.0
    assert makespan([Node(n.id, n.after, n.seconds) for n in jobs], {}, max_jobs=2) == 50.0
    # The order Snakemake's ILP scheduler may pick instead: the long job last.
    assert makespan(jobs, {}, max_jobs=2, larger_first=False) == 50.0
