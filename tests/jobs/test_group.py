"""A group job's spec, image, size and failure report (groups.py), from stand-in jobs made
of Snakemake's own named lists; and the runtime's reading of a group spec."""

from __future__ import annotations

import importlib
import os
import sys

import pytest
from snakemake.io import temp
from snakemake.iocontainers import ResourceList

from snakemake_executor_knot.config.settings import KnotConfig, with_classes
from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.image.dockerfile import ImageSpec
from snakemake_executor_knot.jobs.group import (
    Member,
    build_group_spec,
    check_sequential,
    external_inputs,
    failed_member,
    group_image,
    group_resources,
    home_items,
    job_key,
    plan_name,
)
from snakemake_executor_knot.run.adoption import spec_hash
from snakemake_executor_knot.runtime.contract import (
    GROUP_KIND,
    MEMBERS_DIR,
    MEMBERS_DIR_ENV,
    RULE_DIR_ENV,
    RULE_MODULE,
)
from snakemake_executor_knot.runtime.group import member_code, member_specs, outside_inputs
from snakemake_executor_knot.runtime.report import JobFailure

from ..conftest import FakeJob, fake_job

KINDS = {"upper": "run", "count": "shell", "report": "run"}


class FakeDag:
    def __init__(self, depending=None, targets=(), finished=()):
        self.depending = depending or {}
        self.targetfiles = set(targets)
        self._finished = set(finished)

    def finished(self, job) -> bool:
        return job in self._finished

    def needrun(self, job) -> bool:
        return True


def _uri(path: str) -> str:
    return f"s3://bucket/knot/files/abc/{path}"


def _group(first_jobid=3, outside_needs_temp=False, resources=None):
    """upper (temp out) -> count (non-temp out) -> report; ``summary`` outside reads
    count's output (and upper's temp file, if asked)."""
    upper = fake_job(
        rule="upper", jobid=first_jobid, input=["data/a.txt"], output=[temp("work/a.tmp")]
    )
    count = fake_job(
        rule="count",
        jobid=first_jobid + 1,
        input=["work/a.tmp"],
        output=["results/a.count"],
        shellcmd="wc -c < {input} > {output}",
        resources=(resources or {}).get("count"),
        threads=(resources or {}).get("count_threads", 1),
    )
    report = fake_job(
        rule="report",
        jobid=first_jobid + 2,
        input={"text": "work/a.tmp", "counted": "results/a.count"},
        output=["results/a.report"],
        resources=(resources or {}).get("report"),
    )
    summary = fake_job(rule="summary", jobid=99, input=["results/a.count"])
    needs = ["results/a.count"] + (["work/a.tmp"] if outside_needs_temp else [])
    dag = FakeDag(
        depending={
            upper: {count: ["work/a.tmp"], report: ["work/a.tmp"]},
            count: {report: ["results/a.count"], summary: needs},
            report: {},
        }
    )
    if outside_needs_temp:
        dag.depending[upper][summary] = ["work/a.tmp"]
    members = (upper, count, report)
    return FakeJob(
        groupid="prep",
        jobs=frozenset(members),
        toposorted=[[upper], [count], [report]],
        dag=dag,
        is_group=lambda: True,
        is_local=False,
    )


def test_group_spec_runs_members_in_order_and_keeps_the_temp_file_on_disk():
    spec = build_group_spec(_group(), KINDS, _uri, {"n": 1})
    assert spec["kind"] == GROUP_KIND and spec["group"] == "prep"
    assert spec["rule"] == plan_name(_group()) == "group:prep:count+report+upper"
    assert spec["jobid"] == 3 and spec["config"] == {"n": 1}
    assert [(m["rule"], m["kind"]) for m in spec["members"]] == list(KINDS.items())
    assert all("config" not in m and "version" not in m for m in spec["members"])
    # Only data/a.txt comes from outside; the temp file never travels, count's output does.
    assert [i["path"] for i in external_inputs(spec)] == ["data/a.txt"]
    assert [i["path"] for i in home_items(spec, "output")] == [
        "results/a.count",
        "results/a.report",
    ]
    upper, count, report = spec["members"]
    assert upper["output"]["items"][0]["upload"] is False
    assert count["input"]["items"][0]["from_group"] is True
    assert [i.get("from_group") for i in report["input"]["items"]] == [True, True]


def test_a_temp_file_needed_outside_the_group_or_a_target_comes_home():
    spec = build_group_spec(_group(outside_needs_temp=True), KINDS, _uri, {})
    assert "work/a.tmp" in [i["path"] for i in home_items(spec, "output")]
    group = _group()
    group.dag.targetfiles.add("work/a.tmp")
    spec = build_group_spec(group, KINDS, _uri, {})
    assert "work/a.tmp" in [i["path"] for i in home_items(spec, "output")]


def test_the_group_spec_hash_ignores_snakemakes_jobids_so_a_later_run_adopts():
    first = build_group_spec(_group(first_jobid=3), KINDS, _uri, {})
    later = build_group_spec(_group(first_jobid=40), KINDS, _uri, {})
    assert first != later and spec_hash(first) == spec_hash(later)
    assert job_key(_group(first_jobid=40)) == 40


def _image(rule, base="knot-base:py3.11", requirements=(), files=None, platform="linux/amd64"):
    files = files or {"/opt/knot/lib/knot_rule.py": f"# {rule}\n".encode()}
    return ImageSpec(rule=rule, base_image=base, requirements=requirements, files=files,
                     platform=platform)  # fmt: skip


def test_the_group_image_holds_each_rule_under_its_own_folder_and_all_requirements():
    parts = [
        Member("upper", _image("upper", requirements=("numpy==2.0.0",))),
        Member("report", _image("report", requirements=("pandas==2.2.0", "numpy==2.0.0"))),
    ]
    image = group_image("group:prep:report+upper", "prep", parts)
    assert image.rule == "group:prep:report+upper"
    assert image.requirements == ("numpy==2.0.0", "pandas==2.2.0")
    assert dict(image.files) == {
        f"{MEMBERS_DIR}/report/lib/knot_rule.py": b"# report\n",
        f"{MEMBERS_DIR}/upper/lib/knot_rule.py": b"# upper\n",
    }


@pytest.mark.parametrize(
    ("other", "words"),
    [
        (Member("report", _image("report", base="rocker/r-ver:4")), "different container:"),
        (Member("report", _image("report", platform="linux/arm64")), "different platform"),
        (Member("report", None, "repo/img:1"), "knot_image=repo/img:1"),
        (Member("report", _image("report", requirements=("numpy==1.26.4",))), "numpy==1.26.4"),
    ],
)
def test_rules_that_cannot_share_one_image_are_refused_naming_group_and_rules(other, words):
    parts = [Member("upper", _image("upper", requirements=("numpy==2.0.0",))), other]
    with pytest.raises(RuleError) as caught:
        group_image("group:prep:report+upper", "prep", parts)
    message = str(caught.value)
    assert "Group 'prep' (rules report, upper) cannot run as one AWS Batch job" in message
    assert words in message and "remove 'group:'" in message


def test_a_group_asks_for_its_largest_member_and_the_sum_of_time_limits():
    sizes = {"count": {"mem_mb": 6000, "runtime": 10}, "report": {"runtime": 5}}
    sizes["count_threads"] = 3
    found = group_resources(_group(resources=sizes), KnotConfig())
    assert (found.vcpus, found.memory_mib, found.gpus) == (3, 6000, 0)
    assert found.timeout_s is None  # upper has no limit, so the group has none


def test_a_group_time_limit_is_the_sum_of_its_members():
    sizes = {"count": {"runtime": 10}, "report": {"runtime": 5}}
    group = _group(resources=sizes)
    upper = next(m for m in group.jobs if m.rule.name == "upper")
    upper.resources = ResourceList(fromdict={"_cores": 1, "runtime": 1})
    assert group_resources(group, KnotConfig()).timeout_s == (10 + 5 + 1) * 60


def test_a_group_with_a_gpu_member_runs_in_its_gpu_class():
    config = with_classes(KnotConfig(), "gpu=g5")
    found = group_resources(_group(resources={"count": {"gpu": 1}}), config)
    assert (found.compute_class, found.gpus) == ("gpu", 1)


def test_members_in_different_cpu_classes_are_refused_naming_both():
    config = with_classes(KnotConfig(), "big=m6i:500GB")
    group = _group(resources={"count": {"knot_class": "big"}})
    with pytest.raises(RuleError, match=r"different compute classes \(big, default\)"):
        group_resources(group, config)


def test_a_pipe_inside_a_group_is_refused_as_members_run_one_at_a_time():
    group = _group()
    upper = next(m for m in group.jobs if m.rule.name == "upper")
    upper.output[0].flags["pipe"] = True
    with pytest.raises(RuleError, match=r"rule 'upper' writes pipe\(\) output work/a.tmp"):
        check_sequential(group)
    check_sequential(_group())


def test_the_failing_member_is_read_from_the_log_tail():
    spec = build_group_spec(_group(), KINDS, _uri, {})
    tail = [
        "knot: rule upper, jobid 3: running (run)",
        "knot: rule count, jobid 4: FAILED: the shell command exited with 1",
        "knot: rule group:prep:count+report+upper, jobid 3: failed",
    ]
    assert failed_member(spec, tail) == "count"
    assert failed_member(spec, ["knot: rule count, jobid 9: FAILED: x"]) is None


# ---- the runtime's side


def test_the_runtime_completes_members_with_the_shared_keys_and_checks_them():
    spec = build_group_spec(_group(), KINDS, _uri, {"n": 1})
    members = member_specs(spec)
    assert [m["config"] for m in members] == [{"n": 1}] * 3
    assert [i.path for i in outside_inputs(members)] == ["data/a.txt"]
    for bad in ([], [{**members[0], "rule": "../x"}], [{**members[0], "kind": GROUP_KIND}]):
        with pytest.raises(JobFailure):
            member_specs({**spec, "members": bad})


def test_each_member_imports_its_own_rule_module(tmp_path, monkeypatch):
    for rule in ("one", "two"):
        (tmp_path / rule / "lib").mkdir(parents=True)
        (tmp_path / rule / "lib" / f"{RULE_MODULE}.py").write_text(f"NAME = {rule!r}\n")
    env = {MEMBERS_DIR_ENV: str(tmp_path)}
    monkeypatch.delenv(RULE_DIR_ENV, raising=False)
    seen = []
    for rule in ("one", "two"):
        with member_code(rule, env):
            seen.append((importlib.import_module(RULE_MODULE).NAME, os.environ[RULE_DIR_ENV]))
    assert seen == [(rule, str(tmp_path / rule / "rule")) for rule in ("one", "two")]
    assert RULE_MODULE not in sys.modules and RULE_DIR_ENV not in os.environ
