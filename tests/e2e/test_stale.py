"""End to end: never a stale or overwritten result after Snakemake is killed.

tests/workflows/stale: rule b reads raw.txt, sleeps as many seconds as its first line says,
and writes out.txt. Snakemake is killed (SIGKILL, its process group) while b runs in Batch;
raw.txt is edited; after --unlock, --rerun-incomplete must not adopt the running job (its
input changed), must terminate it before submitting anew, say so in one line, and end with
out.txt built from the NEW raw.txt. The terminated job never uploads: once its sleep would
have ended, the stored out.txt still holds the new bytes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import boto3
import pytest

from snakemake_executor_knot.emulator.patches.batch import CONTAINER_LABEL
from snakemake_executor_knot.image.builder import docker_client
from snakemake_executor_knot.jobs.staging import workflow_id

from .helpers import (
    KNOT,
    ROOT,
    copy_workflow,
    snakemake,
    start_snakemake,
    storage_args,
)

pytestmark = pytest.mark.e2e

STALE = ROOT / "tests" / "workflows" / "stale"
BUCKET = "knot-e2e-stale"
OLD_SECONDS = 45  # the first job's sleep: long enough for the re-run to decide while it runs
OLD = f"{OLD_SECONDS}\nold content\n"
NEW = "1\nnew content\n"


@pytest.mark.parametrize("mode", ["files", "storage"])
def test_edited_input_is_not_adopted_and_the_old_job_never_overwrites(mode, emulator_env, tmp_path):
    workdir = copy_workflow(STALE, tmp_path / "knot")
    prefix = f"stale-{os.getpid()}-{mode}"
    args = (*KNOT, *_storage_args(emulator_env, mode, prefix))
    _write_raw(mode, workdir, prefix, OLD)
    old = _kill_while_b_runs(workdir, args)
    killed_at = time.time()
    _write_raw(mode, workdir, prefix, NEW)

    assert snakemake(workdir, "--unlock").returncode == 0
    rerun = snakemake(workdir, *args, "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stdout[-6000:]
    assert "adopted Batch job" not in rerun.stdout
    said = re.findall(
        rf"knot: rule b, jobid \d+: terminated Batch job {re.escape(old)}.*", rerun.stdout
    )
    assert len(said) == 1 and "inputs or params changed" in said[0], rerun.stdout[-6000:]
    (job,) = boto3.client("batch").describe_jobs(jobs=[old])["jobs"]
    assert job["status"] == "FAILED" and "superseded" in job.get("statusReason", ""), job
    assert _stored_out(mode, workdir, prefix) == NEW
    if mode == "files":
        assert (workdir / "out.txt").read_text() == NEW

    # The old job would have woken up and uploaded by now, had it not been terminated.
    time.sleep(max(0.0, killed_at + OLD_SECONDS + 10 - time.time()))
    assert _stored_out(mode, workdir, prefix) == NEW


def test_an_orphan_no_job_of_the_new_run_matches_is_terminated_at_start_up(emulator_env, tmp_path):
    """The rule that makes out.txt is renamed while its job runs: the new run's job is
    not the same job (another rule), so the orphan is terminated before anything is
    submitted, and never uploads over the new out.txt."""
    workdir = copy_workflow(STALE, tmp_path / "knot")
    _write_raw("files", workdir, "", OLD)
    old = _kill_while_b_runs(workdir, KNOT)
    killed_at = time.time()
    snakefile = workdir / "Snakefile"
    snakefile.write_text(snakefile.read_text().replace("rule b:", "rule b_renamed:"))
    _write_raw("files", workdir, "", NEW)

    assert snakemake(workdir, "--unlock").returncode == 0
    rerun = snakemake(workdir, *KNOT, "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stdout[-6000:]
    said = re.findall(rf"knot: rule b: terminated Batch job {re.escape(old)}.*", rerun.stdout)
    assert len(said) == 1 and "no job of this run makes its outputs" in said[0]
    assert rerun.stdout.index(said[0]) < rerun.stdout.index("rule b_renamed:")
    time.sleep(max(0.0, killed_at + OLD_SECONDS + 10 - time.time()))
    assert _stored_out("files", workdir, "") == NEW
    assert (workdir / "out.txt").read_text() == NEW


def _storage_args(env: dict, mode: str, prefix: str) -> tuple[str, ...]:
    return () if mode == "files" else storage_args(env, BUCKET, prefix)


def _write_raw(mode: str, workdir, prefix: str, text: str) -> None:
    if mode == "files":
        (workdir / "raw.txt").write_text(text)
        return
    s3 = boto3.client("s3")
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/raw.txt", Body=text.encode())


def _stored_out(mode: str, workdir, prefix: str) -> str:
    """out.txt as downstream jobs would read it: in knot's bucket (local mode), or under
    the storage prefix."""
    if mode == "files":
        entry = json.loads(
            (workdir / ".snakemake" / "knot" / "journal.jsonl").read_text().splitlines()[-1]
        )
        bucket = entry["spec_uri"][len("s3://") :].split("/")[0]
        key = f"knot/files/{workflow_id(workdir)}/out.txt"
    else:
        bucket, key = BUCKET, f"{prefix}/out.txt"
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def _kill_while_b_runs(workdir, args: tuple[str, ...]) -> str:
    """Start the run, kill it once b's container sleeps (its input read); b's Batch id.
    Batch says RUNNING before the container has staged its inputs, and in storage mode it
    reads raw.txt from the bucket: the test must not edit it before then."""
    process = start_snakemake(workdir, *args, new_session=True)
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            after = "".join(seen).rpartition("rule b:")[2]
            if "rule b:" in "".join(seen) and re.search(r"knot: Batch jobs: .*\bRUNNING", after):
                break
        else:
            pytest.fail("the run ended before b ran:\n" + "".join(seen)[-6000:])
        job_id = _journaled(workdir)
        _wait_until_sleeping(job_id)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    return job_id


def _journaled(workdir) -> str:
    journal = workdir / ".snakemake" / "knot" / "journal.jsonl"
    (entry,) = [json.loads(line) for line in journal.read_text().splitlines()]
    return entry["batch_id"]


def _wait_until_sleeping(job_id: str, timeout: float = 120) -> None:
    """Until the job's container runs its ``sleep``, which comes after staging in."""
    engine = docker_client()
    deadline = time.time() + timeout
    while time.time() < deadline:
        for container in engine.containers.list(filters={"label": CONTAINER_LABEL}):
            if f"AWS_BATCH_JOB_ID={job_id}" not in (container.attrs["Config"]["Env"] or []):
                continue
            processes = container.top().get("Processes") or []
            if any("sleep" in " ".join(p) for p in processes):
                return
        time.sleep(0.5)
    pytest.fail(f"Batch job {job_id} never reached its sleep")
