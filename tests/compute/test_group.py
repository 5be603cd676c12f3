"""A group job's one Batch size and compute class (compute/group.py)."""

from __future__ import annotations

import pytest
from snakemake.common.tbdstring import TBDString
from snakemake.iocontainers import ResourceList

from snakemake_executor_knot.compute.group import group_resources
from snakemake_executor_knot.config.settings import KnotConfig, with_classes
from snakemake_executor_knot.errors import RuleError

from ..jobs.test_group import group_job


def test_a_group_asks_for_its_largest_member_and_the_sum_of_time_limits():
    sizes = {"count": {"mem_mb": 6000, "runtime": 10}, "report": {"runtime": 5}}
    sizes["count_threads"] = 3
    found = group_resources(group_job(resources=sizes), KnotConfig())
    assert (found.vcpus, found.memory_mib, found.gpus) == (3, 6000, 0)
    assert found.timeout_s is None  # upper has no limit, so the group has none


def test_members_a_pipe_joins_add_up_as_they_run_at_once():
    sizes = {"count": {"mem_mb": 6000, "runtime": 10}, "count_threads": 3}
    sizes["report"] = {"mem_mb": 1000, "runtime": 5}
    group = group_job(resources=sizes)
    upper = next(m for m in group.jobs if m.rule.name == "upper")
    count = next(m for m in group.jobs if m.rule.name == "count")
    upper.resources = ResourceList(fromdict={"_cores": 2, "mem_mb": 2000, "runtime": 20})
    upper.threads = 2
    upper.pipe_group = count.pipe_group = object()
    found = group_resources(group, KnotConfig())
    assert (found.vcpus, found.memory_mib) == (2 + 3, 2000 + 6000)
    assert found.timeout_s == (max(20, 10) + 5) * 60


def test_a_group_time_limit_is_the_sum_of_its_members():
    sizes = {"count": {"runtime": 10}, "report": {"runtime": 5}}
    group = group_job(resources=sizes)
    upper = next(m for m in group.jobs if m.rule.name == "upper")
    upper.resources = ResourceList(fromdict={"_cores": 1, "runtime": 1})
    assert group_resources(group, KnotConfig()).timeout_s == (10 + 5 + 1) * 60


def test_a_group_with_a_gpu_member_runs_in_its_gpu_class():
    config = with_classes(KnotConfig(), "gpu=g5")
    found = group_resources(group_job(resources={"count": {"gpu": 1}}), config)
    assert (found.compute_class, found.gpus) == ("gpu", 1)


def test_members_in_different_cpu_classes_are_refused_naming_both():
    config = with_classes(KnotConfig(), "big=m6i:500GB")
    group = group_job(resources={"count": {"knot_class": "big"}})
    with pytest.raises(RuleError, match=r"different compute classes \(big, default\)"):
        group_resources(group, config)


def test_a_member_resource_that_waits_for_another_members_output_is_refused_clearly():
    """Snakemake leaves mem_mb=max(2*input.size, 1000) '<TBD>' while the input is the
    output of another member; knot sizes the group before it starts (Snakemake's
    test_default_resources)."""
    group = group_job(resources={"count": {"mem_mb": TBDString()}})
    with pytest.raises(RuleError, match="Rule 'count' in group .*'mem_mb' is computed from"):
        group_resources(group, KnotConfig())
    # A resource that does not size the job (tmpdir, which the job sets itself) may wait.
    waiting = group_job(resources={"count": {"mem_mb": 9000, "tmpdir": TBDString()}})
    assert group_resources(waiting, KnotConfig()).memory_mib == 9000
