"""End to end under injected faults (the emulator's `knot emulator faults`): S3 failing a
share of requests and Batch throttling leave the outputs identical to a local run and
submit nothing twice; Ctrl-C on Snakemake leaves no job active in Batch."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from .fixtures import boto_client
from .helpers import (
    EXAMPLES,
    copy_workflow,
    file_digests,
    latest_summary,
    outputs_of,
    snakemake,
    start_snakemake,
)

pytestmark = pytest.mark.e2e

KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "8", "--latency-wait", "5")
ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


def _queues(emulator) -> list[str]:
    """Every job queue of the emulator (knot's, once the run has made its stack). Batch is
    asked, not CloudFormation: DescribeStacks while moto creates a stack can fail."""
    batch = boto_client(emulator, "batch")
    return [q["jobQueueArn"] for q in batch.describe_job_queues()["jobQueues"]]


def _jobs_since(emulator, since_ms: int, children: bool = False) -> list[dict]:
    """Jobs created after ``since_ms``: array parents and single jobs, and with
    ``children`` array children too (moto lists them in the queue; AWS does not)."""
    batch = boto_client(emulator, "batch")
    found = []
    for queue in _queues(emulator):
        pages = batch.get_paginator("list_jobs").paginate(
            jobQueue=queue,
            filters=[{"name": "AFTER_CREATED_AT", "values": [str(since_ms)]}],
        )
        # moto ignores the filter (it returns every job), so the time is checked here too.
        found += [
            job
            for page in pages
            for job in page["jobSummaryList"]
            if (children or ":" not in job["jobId"]) and job["createdAt"] >= since_ms
        ]
    return found


def test_s3_errors_and_throttling_change_nothing_and_submit_nothing_twice(
    emulator, faults, tmp_path
):
    local_dir = copy_workflow(EXAMPLES / "pi", tmp_path / "local")
    knot_dir = copy_workflow(EXAMPLES / "pi", tmp_path / "knot")
    before = file_digests(local_dir)
    assert snakemake(local_dir, "--cores", "2").returncode == 0
    # Warm the stack and images first: the faults are for the run, not the set-up.
    warm = snakemake(knot_dir, *KNOT, "--until", "sample")
    assert warm.returncode == 0, warm.stdout[-4000:]
    faults(
        "--s3-errors", "0.1", "--seed", "11",
        "--throttle", "batch.SubmitJob=2", "--throttle", "batch.DescribeJobs=3",
    )  # fmt: skip
    since_ms = int(time.time() * 1000)
    result = snakemake(knot_dir, *KNOT, "--forceall")
    assert result.returncode == 0, result.stdout[-6000:]

    assert outputs_of(knot_dir, before) == outputs_of(local_dir, before)
    injected = faults()["injected"]
    assert injected.get("batch.SubmitJob") == 2 and injected.get("batch.DescribeJobs") == 3
    assert sum(n for op, n in injected.items() if op.startswith("s3.")) >= 3
    # One Batch job per SubmitJob that knot made: throttled calls left no duplicates.
    submitted = latest_summary(knot_dir)["calls"]["batch.SubmitJob"]
    assert len(_jobs_since(emulator, since_ms)) == submitted


SLEEPY = """
rule all:
    input: expand("out/{i}.txt", i=range(3))

rule nap:
    output: "out/{i}.txt"
    shell: "sleep 60 && echo {wildcards.i} > {output}"
"""


def test_ctrl_c_leaves_no_job_active_in_batch(emulator, emulator_env, tmp_path):
    (tmp_path / "Snakefile").write_text(SLEEPY)
    since_ms = int(time.time() * 1000)
    run = start_snakemake(tmp_path, *KNOT)
    try:
        _wait_until_running(emulator, since_ms, run)
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0, output[-3000:]
    jobs = _jobs_since(emulator, since_ms, children=True)
    assert jobs, "the run submitted nothing"
    deadline = time.time() + 60
    while time.time() < deadline:
        active = [j for j in _described(emulator, jobs) if j["status"] in ACTIVE]
        if not active:
            break
        time.sleep(2)
    assert active == [], output[-3000:]
    assert not list(tmp_path.glob("out/*.txt"))  # each job sleeps 60 s: none finished


def _described(emulator, jobs: list[dict]) -> list[dict]:
    batch = boto_client(emulator, "batch")
    return batch.describe_jobs(jobs=[j["jobId"] for j in jobs])["jobs"]


def _wait_until_running(emulator, since_ms: int, run: subprocess.Popen) -> None:
    deadline = time.time() + 600
    while time.time() < deadline:
        assert run.poll() is None, run.stdout.read()[-3000:]
        jobs = _jobs_since(emulator, since_ms, children=True)
        if jobs and any(j["status"] == "RUNNING" for j in _described(emulator, jobs)):
            return
        time.sleep(2)
    pytest.fail("no job of the run reached RUNNING within 600 s")
