"""Which compute class a job runs in, and the per-class checks, from the job's resources."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.compute.resources import batch_resources
from snakemake_executor_knot.config.settings import KnotConfig, with_classes
from snakemake_executor_knot.errors import RuleError

CLASSES = with_classes(
    KnotConfig(instance_types=("c5", "m5")),
    "gpu=g4dn.xlarge; biggpu=g5:200GB; bigdisk=m6i:500GB:maxvcpus=16; small=c5.xlarge",
)


def _class(threads=1, config=CLASSES, check_disk=True, **resources) -> str:
    return batch_resources("fit", threads, resources, config, check_disk).compute_class


def test_cpu_jobs_go_to_default_and_gpu_jobs_to_a_gpu_class_by_themselves():
    assert _class() == "default"
    assert _class(gpu=1) == "gpu"
    assert _class(nvidia_gpu=1) == "gpu"  # the older spelling, still read


def test_a_gpu_job_the_first_gpu_class_cannot_hold_goes_to_the_next():
    assert _class(threads=8, gpu=1) == "biggpu"  # g4dn.xlarge has 4 vCPUs
    assert _class(gpu=1, disk_mb=100_000) == "biggpu"  # 30 GiB volume, then 200 GiB


def test_knot_class_picks_the_class():
    assert _class(knot_class="bigdisk", disk_mb=400_000) == "bigdisk"
    assert _class(knot_class="biggpu", gpu=1) == "biggpu"
    assert _class(knot_class="default") == "default"


def test_snakemakes_own_disk_guess_is_not_checked():
    assert _class(disk_mb=50_000, check_disk=False) == "default"


@pytest.mark.parametrize(
    ("threads", "resources", "message"),
    [
        (1, {"knot_class": "huge"}, r"knot_class='huge' names no compute class \(this run has: "
         r"default, gpu, biggpu, bigdisk, small\)"),
        (1, {"knot_class": 3}, r"knot_class=3 names no compute class"),
        (1, {"knot_class": "gpu"}, r"asks for no GPU, but its compute class 'gpu' has only GPU"),
        (1, {"knot_class": "bigdisk", "gpu": 1}, r"class 'bigdisk' \(m6i\) has no GPU instance"),
        (32, {"knot_class": "bigdisk"}, r"threads=32 exceeds the 16 vCPUs of compute class "
         r"'bigdisk'. Lower threads: or raise maxvcpus of class 'bigdisk' in --knot-compute"),
        (8, {"knot_class": "small"}, r"threads=8 exceeds the 4 vCPUs of the largest instance "
         r"of compute class 'small' \(instance types c5.xlarge\)"),
        (1, {"knot_class": "small", "mem_mb": 9000}, r"mem_mb=9000 exceeds the 8 GiB"),
        (1, {"disk_mb": 40_000}, r"disk_mb=40000 exceeds the 30 GiB \(32212 MB\) root volume of "
         r"compute class 'default'. Lower disk_mb, raise --knot-root-volume-gb"),
        (1, {"disk_mib": 600_000, "knot_class": "bigdisk"}, r"disk_mb=629146 exceeds the 500 GiB"),
        (1, {"gpu": 1, "disk_mb": 300_000}, r"disk_mb=300000 exceeds the 30 GiB .* class 'gpu'"),
        (300, {}, r"threads=300 exceeds the 256 vCPUs .*--knot-max-vcpus"),
    ],
)  # fmt: skip
def test_a_job_its_class_cannot_hold_is_refused_naming_rule_class_and_fix(
    threads, resources, message
):
    with pytest.raises(RuleError, match=message) as caught:
        batch_resources("align", threads, resources, CLASSES)
    assert str(caught.value).startswith("Rule 'align'")
