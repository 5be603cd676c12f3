"""End to end: a Snakefile's envvars: reach run:, shell: and script: jobs on the emulator,
with outputs equal to --executor local, and the value appears in none of the places knot
writes: the spec objects, the job definitions, the jobs as Batch describes them, the
CloudWatch logs, the rule images' layers, and `knot jobs`. A variable that is not set is
Snakemake's own error, before any stack exists."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from .helpers import ROOT, copy_workflow, file_digests, outputs_of, snakemake

pytestmark = pytest.mark.e2e

WORKFLOW = ROOT / "tests" / "workflows" / "envvars"
KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "4", "--latency-wait", "5")


def test_envvars_reach_every_kind_of_job_and_never_appear_in_plain_text(emulator_env, tmp_path):
    token = f"knot-e2e-{uuid.uuid4().hex}"
    env = {"KNOT_TEST_TOKEN": token}
    since_ms = int(time.time() * 1000)
    local_dir = copy_workflow(WORKFLOW, tmp_path / "local")
    knot_dir = copy_workflow(WORKFLOW, tmp_path / "knot")
    before = file_digests(local_dir)
    local = snakemake(local_dir, "--cores", "2", env=env)
    assert local.returncode == 0, local.stdout[-3000:]
    run = snakemake(knot_dir, *KNOT, env=env)
    assert run.returncode == 0, run.stdout[-6000:]
    expected = outputs_of(local_dir, before)
    assert len(expected) == 3
    assert outputs_of(knot_dir, before) == expected

    places = {
        "snakemake's output": run.stdout,
        "spec objects": _spec_objects(),
        "job definitions": _dump(_batch().describe_job_definitions()["jobDefinitions"]),
        "jobs (SubmitJob as Batch keeps it)": _dump(_described_jobs()),
        "CloudWatch logs": _log_events(),
        "`knot jobs`": _knot_jobs(),
        "rule images": _image_bytes(since_ms),
    }
    assert all(places.values()), [name for name, text in places.items() if not text]
    assert [name for name, text in places.items() if token.encode() in _bytes(text)] == []
    # The run removed its secret when it ended.
    secrets = boto3.client("secretsmanager").list_secrets()["SecretList"]
    assert [s["Name"] for s in secrets if s["Name"].startswith("knot/knot/")] == []


def test_unset_envvar_is_snakemakes_error_before_any_stack(emulator_env, tmp_path, monkeypatch):
    monkeypatch.delenv("KNOT_TEST_TOKEN", raising=False)
    workdir = copy_workflow(WORKFLOW, tmp_path / "wf")
    stack = f"knot-envvars-{uuid.uuid4().hex[:8]}"
    failed = snakemake(workdir, *KNOT, "--knot-stack-name", stack)
    assert failed.returncode != 0
    assert "environment variables are requested by the workflow but undefined" in failed.stdout
    assert "KNOT_TEST_TOKEN" in failed.stdout
    with pytest.raises(ClientError, match="does not exist"):
        boto3.client("cloudformation").describe_stacks(StackName=stack)


# ---- where the value must not be


def _batch():
    return boto3.client("batch")


def _dump(value) -> str:
    return json.dumps(value, default=str)


def _bytes(text) -> bytes:
    return text if isinstance(text, bytes) else str(text).encode()


def _spec_objects() -> bytes:
    s3 = boto3.client("s3")
    found = b""
    for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="knot/specs/")
        for page in pages:
            for item in page.get("Contents", []):
                found += s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def _described_jobs() -> list[dict]:
    batch = _batch()
    ids = []
    for queue in batch.describe_job_queues()["jobQueues"]:
        for status in ("SUCCEEDED", "FAILED"):
            listed = batch.list_jobs(jobQueue=queue["jobQueueArn"], jobStatus=status)
            ids += [job["jobId"] for job in listed["jobSummaryList"]]
    return [job for start in range(0, len(ids), 100)
            for job in batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]]  # fmt: skip


def _log_events() -> str:
    logs = boto3.client("logs")
    messages = []
    for group in logs.describe_log_groups()["logGroups"]:
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group["logGroupName"])
        messages += [event["message"] for page in pages for event in page["events"]]
    return "\n".join(messages)


def _knot_jobs() -> str:
    command = [sys.executable, "-m", "snakemake_executor_knot.cli", "--emulator", "jobs"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def _image_bytes(since_ms: int) -> bytes:
    """`docker save` of the images this run's jobs ran in: each layer as a tar. Only this
    run's: other tests of the session leave job definitions naming images they removed."""
    batch = _batch()
    definitions = {
        job["jobDefinition"] for job in _described_jobs() if job["createdAt"] >= since_ms
    }
    described = batch.describe_job_definitions(jobDefinitions=sorted(definitions))
    images = {d["containerProperties"]["image"] for d in described["jobDefinitions"]}
    saved = subprocess.run(["docker", "save", *sorted(images)], capture_output=True, timeout=600)
    assert saved.returncode == 0, saved.stderr.decode()[-2000:]
    return saved.stdout
