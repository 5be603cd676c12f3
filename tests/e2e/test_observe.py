"""End to end on the emulator: what a job used is measured in its real container, lands in
the run record, and knot report sizes the rule from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest

from .helpers import (
    comparable_environment,
    copy_workflow,
    file_digests,
    knot_report_rows,
    latest_summary,
    outputs_of,
    snakemake,
)

pytestmark = pytest.mark.e2e

KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "4", "--latency-wait", "5")
MIB = 300

MEMORY = f"""
rule all:
    input: "out/big.txt"

rule big:
    output: "out/big.txt"
    resources: mem_mb=4000
    shell:
        "python3 -c 'import sys; b = bytearray({MIB} * 2**20); b[::4096] = b\\"x\\" * "
        "len(b[::4096]); open(sys.argv[1], \\"w\\").write(str(len(b)))' {{output:q}}"
"""


def test_known_allocation_is_measured_and_sized_down(emulator_env, tmp_path):
    (tmp_path / "Snakefile").write_text(MEMORY)
    done = snakemake(tmp_path, *KNOT)
    assert done.returncode == 0, done.stdout[-6000:]
    assert "knot: Batch jobs:" in done.stdout  # progress lines in Snakemake's output
    (job,) = latest_summary(tmp_path)["jobs"]
    usage = job["usage"]
    assert MIB * 0.9 <= usage["peak_rss_mb"] <= MIB * 1.1, usage
    assert usage["exit_status"] == 0 and usage["wall_s"] > 0
    assert job["requested"]["memory_mib"] == 4000 and job["status"] == "SUCCEEDED"
    host, batch = job["host"], job["batch"]
    assert host["handed_over"] <= host["submitted"] <= host["reported"]
    assert batch["created"] <= batch["started"] <= batch["stopped"]
    (row,) = knot_report_rows(tmp_path)
    assert row["rule"] == "big" and row["requested_mem_mb"] == 4000
    assert row["suggested_mem_mb"] < 4000, row


SLEEPY = """
rule all:
    input: expand("out/{i}.txt", i=[1, 2])

rule sleepy:
    output: "out/{i}.txt"
    run:
        import time
        time.sleep(config.get("sleep", 0))
        with open(output[0], "w") as fh:
            fh.write(f"job {wildcards.i}\\n")
"""


def _running_jobs(env: dict, journal) -> list[str]:
    """Batch ids from the journal whose job Batch reports RUNNING."""
    if not journal.exists():
        return []
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    ids = [line["batch_id"] for line in lines if "batch_id" in line]
    batch = boto3.client("batch", endpoint_url=env["AWS_ENDPOINT_URL"])
    jobs = batch.describe_jobs(jobs=ids)["jobs"]
    return [j["jobId"] for j in jobs if j["status"] == "RUNNING"]


def _start_and_kill(workdir, env: dict, timeout: float = 600) -> list[str]:
    """Start knot's Snakemake, wait until its jobs run in Batch, then SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *KNOT, "--config", "sleep=45"],
        cwd=workdir, env=comparable_environment(), stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    journal = workdir / ".snakemake" / "knot" / "journal.jsonl"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            running = _running_jobs(env, journal)
            if len(running) == 2:
                os.kill(proc.pid, signal.SIGKILL)
                return running
            time.sleep(1)
        pytest.fail(f"the jobs never ran together (exit code {proc.poll()})")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_rerun_after_kill_adopts_running_jobs(emulator_env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Snakefile").write_text(SLEEPY)
    local_dir = copy_workflow(src, tmp_path / "local")
    before = file_digests(local_dir)
    assert snakemake(local_dir, "--cores", "2").returncode == 0
    knot_dir = copy_workflow(src, tmp_path / "knot")

    running = _start_and_kill(knot_dir, emulator_env)
    # A killed Snakemake leaves its lock behind, as after any crash.
    assert snakemake(knot_dir, "--unlock", "--cores", "1").returncode == 0
    again = snakemake(knot_dir, *KNOT, "--config", "sleep=45")

    assert again.returncode == 0, again.stdout[-6000:]
    record = latest_summary(knot_dir)
    assert record["calls"].get("batch.SubmitJob", 0) == 0, record["calls"]
    assert sorted(job["batch_id"] for job in record["jobs"]) == sorted(running)
    assert all(job["adopted"] for job in record["jobs"])
    assert outputs_of(knot_dir, before) == outputs_of(local_dir, before)
