"""Progress lines, capacity warnings, instance-size limits and the run record (pure, or
with moto S3): the host's half of seeing a run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from snakemake_executor_knot.aws.capacity import RunnableWatch, environment_problems
from snakemake_executor_knot.aws.status import JobState
from snakemake_executor_knot.compute.instances import largest, type_size
from snakemake_executor_knot.compute.resources import BatchResources, batch_resources
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.errors import RuleError, StagingError
from snakemake_executor_knot.report.records import load_run
from snakemake_executor_knot.run.progress import Progress
from snakemake_executor_knot.run.record import (
    MAX_USAGE_BYTES,
    RunLog,
    clean_usage,
    close_record,
    read_usage,
    write_record,
)


def _states(*statuses: str) -> list[JobState]:
    return [JobState(f"j{i}", s) for i, s in enumerate(statuses)]


def test_progress_logs_one_line_per_change_only():
    lines: list[str] = []
    progress = Progress(lines.append)
    progress.update(_states("RUNNABLE", "RUNNABLE"))
    progress.update(_states("RUNNABLE", "RUNNABLE"))
    progress.update(_states("RUNNING", "RUNNABLE"))
    progress.update(_states("SUCCEEDED", "RUNNABLE"))
    progress.update(_states("RUNNABLE"))  # the finished job is no longer polled
    assert lines == [
        "knot: Batch jobs: 2 RUNNABLE",
        "knot: Batch jobs: 1 RUNNABLE, 1 RUNNING",
        "knot: Batch jobs: 1 RUNNABLE, 1 SUCCEEDED",
    ]


ENVIRONMENTS = [
    {"computeEnvironmentName": "spot", "status": "INVALID", "statusReason": "bad role"},
    {
        "computeEnvironmentName": "od",
        "status": "VALID",
        "state": "ENABLED",
        "computeResources": {"maxvCpus": 16, "desiredvCpus": 16},
    },
    {"computeEnvironmentName": "ok", "status": "VALID", "computeResources": {"maxvCpus": 16}},
]


def test_environment_problems_name_the_cause():
    problems = environment_problems(ENVIRONMENTS)
    assert problems[0] == "compute environment spot is INVALID (bad role)"
    assert problems[1].startswith("compute environment od is at its maximum of 16 vCPUs")
    assert len(problems) == 2


def test_runnable_watch_asks_once_per_threshold_and_warns_once():
    asked = []
    watch = RunnableWatch(lambda: asked.append(1) or ENVIRONMENTS, threshold=600)
    assert watch.update(_states("RUNNABLE"), now=0) == []
    assert watch.update(_states("RUNNABLE"), now=300) == []
    assert asked == []  # not yet past the threshold: no call
    warnings = watch.update(_states("RUNNABLE"), now=601)
    assert len(warnings) == 2 and "1 job(s) RUNNABLE for over 10 min" in warnings[0]
    assert watch.update(_states("RUNNABLE"), now=700) == []
    assert asked == [1]  # once per threshold, not per poll
    assert watch.update(_states("RUNNABLE"), now=1300) == []  # same causes: no repeat
    assert asked == [1, 1]


def test_instance_sizes():
    assert type_size("optimal") == (96, 768)
    assert type_size("m5.2xlarge") == (8, 32)
    assert type_size("c5.large") == (2, 4)
    assert type_size("r5") == (96, 768)
    assert type_size("zz9.large") is None
    assert largest(("c5", "m5.large")) == (96, 192)
    assert largest(("c5", "mystery")) is None  # unknown: no refusal


@pytest.mark.parametrize(
    ("types", "threads", "mem", "match"),
    [
        (("optimal",), 1, 800 * 1024, "mem_mb=819200 exceeds the 768 GiB"),
        (("c5.xlarge",), 8, 1000, "threads=8 exceeds the 4 vCPUs"),
        (("c5.2xlarge", "c5.large"), 9, 1000, "threads=9 exceeds the 8 vCPUs"),
        (("m5.large",), 1, 9000, "mem_mb=9000 exceeds the 8 GiB"),
    ],
)
def test_job_larger_than_any_instance_is_refused(types, threads, mem, match):
    config = KnotConfig(instance_types=types)
    with pytest.raises(RuleError, match=f"Rule 'big': {match}"):
        batch_resources("big", threads, {"mem_mb": mem}, config)


def test_job_that_fits_is_accepted():
    config = KnotConfig(instance_types=("m5.large",))
    assert batch_resources("ok", 2, {"mem_mb": 8000}, config).memory_mib == 8000


def test_hostile_usage_documents_are_cleaned():
    assert clean_usage([1]) == {}
    usage = clean_usage({"wall_s": 2, "cpu_s": -1, "peak_rss_mb": float("nan"), "x": 1,
                         "end": True, "exit_status": 2, "start": "7"})  # fmt: skip
    assert usage == {"wall_s": 2.0, "exit_status": 2}


def test_run_record_round_trips_into_the_report(clients, tmp_path):
    s3 = clients.s3
    s3.create_bucket(Bucket="knot-usage")
    doc = {"start": 5.0, "end": 9.0, "wall_s": 3.0, "cpu_s": 2.5, "peak_rss_mb": 120.0,
           "exit_status": 0}  # fmt: skip
    s3.put_object(Bucket="knot-usage", Key="spec.jsonl.usage/1.json", Body=json.dumps(doc).encode())
    clock = iter(range(100)).__next__
    log = RunLog("20261129T130000-ab12cd34", clock=clock)
    job = SimpleNamespace(jobid=7, rule=SimpleNamespace(name="fit"))
    log.handed_over([job])
    log.submitted(
        7, "p:1", BatchResources(2, 4000, 0, None), ("knot-usage", "spec.jsonl.usage/1.json")
    )
    state = JobState("p:1", "SUCCEEDED", created=1.5, started=2.0, stopped=10.0, attempts=1)
    log.finished(7, state)
    log.reported(7)
    assert log.fetch_usage(s3) == 1
    assert read_usage(s3, "knot-usage", "missing.json") == {}
    path = write_record(log.as_dict({"region": "us-east-1"}, {"batch.SubmitJob": 1}, {}), tmp_path)
    (record,) = load_run(path).jobs
    assert record.rule == "fit" and record.batch_id == "p:1" and record.attempts == 1
    assert record.requested.memory_mib == 4000
    assert (record.host.handed_over, record.host.submitted, record.host.reported) == (1, 2, 4)
    assert record.batch.stopped == 10.0 and record.usage.peak_rss_mb == 120.0


def test_hostile_usage_documents_warn_once_and_the_record_is_written(
    clients, tmp_path, monkeypatch
):
    """Usage documents come from jobs: one nested 30,000 deep (inside the size cap), one
    nested 100,000 deep and one over the size cap are each a StagingError naming the job;
    the run record is still written, with one warning for all."""
    monkeypatch.chdir(tmp_path)
    s3 = clients.s3
    s3.create_bucket(Bucket="knot-usage")
    bodies = {
        1: json.dumps({"wall_s": 3.0}).encode(),
        2: b"[" * 100_000 + b"]" * 100_000,
        3: b'{"wall_s": 1}' + b" " * MAX_USAGE_BYTES,
        4: b"[" * 30_000 + b"]" * 30_000,
    }
    log = RunLog("20261129T130000-ab12cd34")
    log.handed_over([SimpleNamespace(jobid=i, rule=SimpleNamespace(name=f"r{i}")) for i in bodies])
    for jobid, body in bodies.items():
        s3.put_object(Bucket="knot-usage", Key=f"u/{jobid}.json", Body=body)
        usage_at = ("knot-usage", f"u/{jobid}.json")
        log.submitted(jobid, f"batch-{jobid}", BatchResources(1, 1000, 0, None), usage_at)
        log.finished(jobid, JobState(f"batch-{jobid}", "SUCCEEDED"))
    warnings: list[str] = []
    path = close_record(log, clients, KnotConfig(emulator=True), {}, warnings.append)
    doc = "its usage document s3://knot-usage/u"
    too_large = "larger than 65,536 bytes, the most knot reads"
    assert [str(e) for e in log.usage_errors] == [
        f"Rule 'r2', AWS Batch job batch-2: {doc}/2.json is {too_large}",
        f"Rule 'r3', AWS Batch job batch-3: {doc}/3.json is {too_large}",
        f"Rule 'r4', AWS Batch job batch-4: {doc}/4.json is nested too deeply to be read as JSON",
    ]
    assert all(isinstance(e, StagingError) for e in log.usage_errors)
    assert warnings == [
        f"knot: the run record leaves out a job's usage (and 2 more): {log.usage_errors[0]}"
    ]
    assert [job.usage.wall_s for job in load_run(path).jobs] == [3.0, None, None, None]
