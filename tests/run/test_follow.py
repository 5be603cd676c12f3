"""Following a job: its submission line, and the name and tags that carry its rule and
wildcards within Batch's limits."""

from __future__ import annotations

import re
from types import SimpleNamespace

from snakemake_executor_knot.aws.tags import tag_value
from snakemake_executor_knot.names import MAX_JOB_NAME
from snakemake_executor_knot.run.submission import (
    _job_name,
    common_wildcards,
    submitted_line,
    wildcards_text,
)

BATCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# Batch's tag values: letters, digits, spaces and _ . : / = + - @, up to 256.
TAG_VALUE = re.compile(r"[\w .:/=+\-@]{0,256}", re.ASCII)


def _job(jobid: int, **wildcards: str) -> SimpleNamespace:
    return SimpleNamespace(jobid=jobid, rule=SimpleNamespace(name="mask"), wildcards_dict=wildcards)


def test_a_single_submission_names_its_jobid_and_wildcards():
    line = submitted_line("mask", "a1b2", [_job(5, subject="sub-05")], array=False)
    assert line == "knot: rule mask: Batch job a1b2 = jobid 5 (subject=sub-05)"


def test_an_array_submission_maps_each_child_index_to_its_job_in_one_line():
    jobs = [_job(i + 3, subject=f"sub-{i:02d}", session="1") for i in range(6)]
    line = submitted_line("mask", "arr", jobs, array=True)
    assert "\n" not in line
    assert line.startswith("knot: rule mask: Batch array job arr, 6 children: ")
    assert ":0 jobid 3 (subject=sub-00 session=1); :1 jobid 4 (subject=sub-01 session=1)" in line
    assert line.endswith("; and 2 more (see 'knot jobs' or the run record)")


def test_an_arrays_name_and_tag_carry_the_wildcards_its_children_share():
    plan = SimpleNamespace(name="mask")
    jobs = [_job(i + 3, subject=f"sub-{i:02d}", session="1") for i in range(3)]
    assert common_wildcards(jobs) == {"session": "1"}
    assert _job_name(plan, jobs, array=True).startswith("mask-1-j3-")
    assert wildcards_text(jobs) == "session=1"
    single = [_job(9, subject="sub-09")]
    assert _job_name(plan, single, array=False).startswith("mask-sub_09-j9-")
    assert wildcards_text([_job(1)]) == ""


def test_names_and_tags_stay_within_batchs_limits_whatever_the_wildcards():
    plan = SimpleNamespace(name="mask")
    odd = _job(7, path="ä/b c;$(rm)\n" + "x" * 400, other="-leading")
    name = _job_name(plan, [odd], array=False)
    assert BATCH_NAME.fullmatch(name) and len(name) <= MAX_JOB_NAME
    value = tag_value(wildcards_text([odd]))
    assert TAG_VALUE.fullmatch(value)
    assert value.startswith("path=_/b c___rm__")
    assert "(rm)\\x0axx" in submitted_line("mask", "id", [odd], array=False)  # escaped
