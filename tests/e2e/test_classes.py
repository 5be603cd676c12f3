"""End to end, one short run: a rule whose GPU jobs and CPU jobs go to different compute
classes. Snakemake decides per job (a callable gpu resource), knot routes each job to its
class's queue, and Batch's own DescribeJobs says where each went; the outputs equal
--executor local. The emulator gives no real GPUs, so the GPU job runs on the CPU."""

from __future__ import annotations

import time

import boto3
import pytest

from .helpers import file_digests, outputs_of, snakemake

pytestmark = pytest.mark.e2e

SNAKEFILE = """
rule all:
    input: "cpu.txt", "gpu.txt"

rule work:
    output: "{kind}.txt"
    resources: gpu=lambda wildcards: 1 if wildcards.kind == "gpu" else 0
    shell: "echo {wildcards.kind} > {output}"
"""
KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "2", "--latency-wait", "5")


def _workdir(path):
    path.mkdir()
    (path / "Snakefile").write_text(SNAKEFILE)
    return path


def test_gpu_and_cpu_jobs_of_one_rule_run_in_their_classes_queues(emulator_env, tmp_path):
    since_ms = int(time.time() * 1000)
    local_dir, knot_dir = _workdir(tmp_path / "local"), _workdir(tmp_path / "knot")
    before = file_digests(local_dir)
    local = snakemake(local_dir, "--cores", "1")
    assert local.returncode == 0, local.stdout[-3000:]
    run = snakemake(knot_dir, *KNOT, "--knot-compute-classes", "gpu=g4dn:ondemand")
    assert run.returncode == 0, run.stdout[-6000:]
    assert outputs_of(knot_dir, before) == outputs_of(local_dir, before)

    outputs = boto3.client("cloudformation").describe_stacks(StackName="knot")["Stacks"][0]
    queues = {o["OutputKey"]: o["OutputValue"] for o in outputs["Outputs"]}
    where = _queues_of_work_jobs(since_ms)
    assert where == {"cpu": queues["JobQueueArn"], "gpu": queues["ClassGpuJobQueueArn"]}


def _queues_of_work_jobs(since_ms: int) -> dict[str, str]:
    """The queue of each job of rule 'work' since ``since_ms``, by its wildcard."""
    batch = boto3.client("batch")
    found = {}
    for queue in batch.describe_job_queues()["jobQueues"]:
        listed = batch.list_jobs(
            jobQueue=queue["jobQueueArn"],
            filters=[{"name": "AFTER_CREATED_AT", "values": [str(since_ms)]}],
        )["jobSummaryList"]
        ids = [job["jobId"] for job in listed]
        for job in batch.describe_jobs(jobs=ids)["jobs"] if ids else []:
            if job["tags"].get("knot:rule") == "work":
                kind = job["jobName"].split("-")[1]
                assert kind not in found, f"two jobs for {kind}"
                found[kind] = job["jobQueue"]
    return found
