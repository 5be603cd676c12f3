"""Per-job Batch sizes from Snakemake's threads and resources, and their errors."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.compute.resources import BatchResources, batch_resources
from snakemake_executor_knot.config.settings import KnotConfig, with_classes
from snakemake_executor_knot.errors import RuleError

CPU = KnotConfig()
GPU = with_classes(KnotConfig(), "gpu=g4dn.xlarge")


def test_defaults():
    assert batch_resources("fit", 1, {}, CPU) == BatchResources(1, 2048, 0, None)


def test_threads_memory_gpu_runtime():
    resources = {"mem_mb": 4000, "gpu": 1, "runtime": 90, "disk_mb": 1000, "tmpdir": "/tmp"}
    assert batch_resources("fit", 4, resources, GPU) == BatchResources(4, 4000, 1, 5400, "gpu")


def test_mem_mib_is_used_without_mem_mb_and_fractions_round_up():
    assert batch_resources("fit", 1, {"mem_mib": 1500.2}, CPU).memory_mib == 1501
    assert batch_resources("fit", 1, {"mem_mb": 3000, "mem_mib": 2861}, CPU).memory_mib == 3000


def test_threads_0_gets_one_vcpu():
    assert batch_resources("light", 0, {}, CPU).vcpus == 1


def test_short_runtime_is_raised_to_the_aws_minimum():
    assert batch_resources("fit", 1, {"runtime": 0.25}, CPU).timeout_s == 60


@pytest.mark.parametrize(
    ("threads", "resources", "config", "message"),
    [
        (1, {"mem_mb": 0}, CPU, r"mem_mb=0 must be positive"),
        (1, {"mem_mib": -5}, CPU, r"mem_mib=-5 must be positive"),
        (-1, {}, CPU, r"threads=-1 must not be negative"),
        (1, {"gpu": -1}, GPU, r"gpu=-1 must be a whole number"),
        (1, {"gpu": 1.5}, GPU, r"gpu=1.5 must be a whole number"),
        (1, {"gpu": 1}, CPU, r"no compute class has GPU.*--knot-compute-classes"),
        (1, {"nvidia_gpu": 2.5}, GPU, r"nvidia_gpu=2.5 must be a whole number"),
        (1, {"disk_mb": "lots"}, CPU, r"'disk_mb' must be a number"),
        (1, {"runtime": 0}, CPU, r"runtime=0 must be positive"),
        (1, {"mem_mb": "4GB"}, CPU, r"'mem_mb' must be a number, not '4GB'"),
        (1, {"runtime": True}, CPU, r"'runtime' must be a number"),
        ("4", {}, CPU, r"'threads' must be a number"),
        (300, {}, CPU, r"threads=300 exceeds .* 256 vCPUs.*--knot-max-vcpus"),
    ],
)
def test_bad_resources_name_the_rule_and_the_fix(threads, resources, config, message):
    with pytest.raises(RuleError, match=message) as caught:
        batch_resources("align_reads", threads, resources, config)
    assert "Rule 'align_reads'" in str(caught.value)
