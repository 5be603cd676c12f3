"""A group job's spec and failure report (jobs/group.py), from stand-in jobs made of
Snakemake's own named lists; and the runtime's reading of a group spec. ``group_job`` is
the stand-in group the tests of its size and image use too."""

from __future__ import annotations

import importlib
import os
import sys

import pytest
from snakemake.io import temp

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.jobs.group import (
    build_group_spec,
    check_sequential,
    external_inputs,
    failed_member,
    home_items,
    job_key,
    plan_name,
)
from snakemake_executor_knot.run.adoption import spec_hash
from snakemake_executor_knot.runtime.contract import (
    GROUP_KIND,
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


def group_job(first_jobid=3, outside_needs_temp=False, resources=None):
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


CONFIG_REF = {"uri": "s3://bucket/knot/specs/config/ab.json", "sha256": "ab" * 32}


def test_group_spec_runs_members_in_order_and_keeps_the_temp_file_on_disk():
    spec = build_group_spec(group_job(), KINDS, _uri, CONFIG_REF)
    assert spec["kind"] == GROUP_KIND and spec["group"] == "prep"
    assert spec["rule"] == plan_name(group_job()) == "group:prep:count+report+upper"
    assert spec["jobid"] == 3 and spec["config_ref"] == CONFIG_REF and "config" not in spec
    assert [(m["rule"], m["kind"]) for m in spec["members"]] == list(KINDS.items())
    assert all(m.keys().isdisjoint({"config", "config_ref", "version"}) for m in spec["members"])
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
    spec = build_group_spec(group_job(outside_needs_temp=True), KINDS, _uri)
    assert "work/a.tmp" in [i["path"] for i in home_items(spec, "output")]
    group = group_job()
    group.dag.targetfiles.add("work/a.tmp")
    spec = build_group_spec(group, KINDS, _uri)
    assert "work/a.tmp" in [i["path"] for i in home_items(spec, "output")]


def test_the_group_spec_hash_ignores_snakemakes_jobids_so_a_later_run_adopts():
    first = build_group_spec(group_job(first_jobid=3), KINDS, _uri)
    later = build_group_spec(group_job(first_jobid=40), KINDS, _uri)
    assert first != later and spec_hash(first) == spec_hash(later)
    assert job_key(group_job(first_jobid=40)) == 40


def test_a_pipe_is_a_fifo_that_never_travels_and_its_members_share_a_pipe_group():
    group = group_job()
    upper = next(m for m in group.jobs if m.rule.name == "upper")
    count = next(m for m in group.jobs if m.rule.name == "count")
    upper.output[0].flags["pipe"] = True
    upper.pipe_group = count.pipe_group = object()  # Snakemake's: one object per pipe group
    check_sequential(group)  # a pipe runs
    spec = build_group_spec(group, KINDS, _uri)
    first, second, third = spec["members"]
    made = first["output"]["items"][0]
    assert (made["pipe"], made["upload"]) == (True, False)
    assert (first["pipe_group"], second["pipe_group"]) == (0, 0) and "pipe_group" not in third
    assert second["input"]["items"][0]["from_group"] is True
    assert "work/a.tmp" not in [i["path"] for i in home_items(spec, "output")]


def test_a_pipe_read_by_a_member_listed_before_its_writer_is_made_inside():
    group = group_job()
    upper = next(m for m in group.jobs if m.rule.name == "upper")
    count = next(m for m in group.jobs if m.rule.name == "count")
    count.jobid = 1  # listed first in its layer, which is ordered by jobid
    group.toposorted = [[upper, count]]  # one layer, as Snakemake puts a pipe group
    spec = build_group_spec(group, KINDS, _uri)
    assert spec["members"][0]["rule"] == "count"
    assert spec["members"][0]["input"]["items"][0]["from_group"] is True


def test_a_service_inside_a_group_is_refused_as_its_readers_run_one_at_a_time():
    group = group_job()
    upper = next(m for m in group.jobs if m.rule.name == "upper")
    upper.output[0].flags["service"] = True
    with pytest.raises(RuleError, match=r"rule 'upper' writes service\(\) output work/a.tmp"):
        check_sequential(group)
    check_sequential(group_job())


def test_the_failing_member_is_read_from_the_log_tail():
    spec = build_group_spec(group_job(), KINDS, _uri)
    tail = [
        "knot: rule upper, jobid 3: running (run)",
        "knot: rule count, jobid 4: FAILED: the shell command exited with 1",
        "knot: rule group:prep:count+report+upper, jobid 3: failed",
    ]
    assert failed_member(spec, tail) == "count"
    assert failed_member(spec, ["knot: rule count, jobid 9: FAILED: x"]) is None


# ---- the runtime's side


def test_the_runtime_completes_members_with_the_shared_keys_and_checks_them():
    # The config as runtime/config.py fetched it through the group's reference, once.
    spec = build_group_spec(group_job(), KINDS, _uri, CONFIG_REF) | {"config": {"n": 1}}
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
