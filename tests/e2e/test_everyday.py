"""End to end: everyday Snakemake features under knot, in local-files mode and in storage
mode, give the bytes `--executor local` gives.

- tests/workflows/everyday: a checkpoint with a directory() output read by glob_wildcards on
  the host and by a job (in storage mode, through the manifest knot writes next to it),
  retries with memory growing with the attempt, temp() intermediates, a shadow rule, an
  include: from a sibling folder whose run: block imports a module beside it, absolute
  paths inside the working directory, reference data by an absolute path outside it
  (read only), and config read by a run: block and a shell command (it travels once per
  run, as one object the specs reference).
- tests/workflows/interrupted: --keep-going with a failing branch, then Snakemake killed
  (SIGKILL) while a job runs, --unlock, and --rerun-incomplete.

One local run of each workflow is the reference for both modes: in storage mode the bucket
must hold what the local run wrote, under the storage prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

import boto3
import pytest

from .helpers import (
    IGNORED_PARTS,
    KNOT,
    ROOT,
    copy_workflow,
    file_digests,
    latest_summary,
    outputs_of,
    snakemake,
    start_snakemake,
    storage_args,
)

pytestmark = pytest.mark.e2e

EVERYDAY = ROOT / "tests" / "workflows" / "everyday"
INTERRUPTED = ROOT / "tests" / "workflows" / "interrupted"
LOCAL = ("--cores", "2")
BUCKET = "knot-e2e-everyday"
REFERENCE_TEXT = "alpha first line\nbeta second line\ngamma third line\n"
PARTS_MANIFEST = "results/parts.knot-manifest.json"
# The checkpoint wraps each part in the config's marks.
LISTING = b"alpha.txt\t[first line]\nbeta.txt\t[second line]\ngamma.txt\t[third line]\n"
SLOW_SECONDS = 20  # how long the job that is running when Snakemake is killed sleeps


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Reference data outside every working directory, read only, as on a shared disk."""
    folder = tmp_path_factory.mktemp("reference")
    path = folder / "genome.txt"
    path.write_text(REFERENCE_TEXT)
    path.chmod(0o444)
    folder.chmod(0o555)
    yield path
    folder.chmod(0o755)


@pytest.fixture(scope="module")
def everyday_local(reference, tmp_path_factory) -> dict[str, str]:
    workdir = copy_workflow(EVERYDAY, tmp_path_factory.mktemp("everyday") / "local")
    before = file_digests(workdir)
    done = snakemake(workdir, *LOCAL, "--config", f"reference={reference}")
    assert done.returncode == 0, done.stdout[-3000:]
    return outputs_of(workdir, before)


@pytest.fixture(scope="module")
def interrupted_local(tmp_path_factory) -> dict[str, str]:
    workdir = copy_workflow(INTERRUPTED, tmp_path_factory.mktemp("interrupted") / "local")
    before = file_digests(workdir)
    _interrupt_and_rerun(workdir, LOCAL)
    return outputs_of(workdir, before)


@pytest.mark.parametrize("mode", ["files", "storage"])
def test_everyday_features_match_local(mode, everyday_local, reference, emulator_env, tmp_path):
    since_ms = int(time.time() * 1000)
    workdir = copy_workflow(EVERYDAY, tmp_path / "knot")
    before = file_digests(workdir)
    extra = _storage_args(emulator_env, mode, "everyday")
    done = snakemake(workdir, *KNOT, *extra, "--config", f"reference={reference}")
    assert done.returncode == 0, done.stdout[-6000:]

    got = _outputs(mode, workdir, before, "everyday")
    if mode == "storage":  # knot's manifest of the checkpoint's directory, next to it
        listed = json.loads(bytes.fromhex(got.pop(PARTS_MANIFEST)))["files"]
        assert {f"results/parts/{f['name']}": f["sha256"] for f in listed if f["size"]} == {
            k: v for k, v in everyday_local.items() if k.startswith("results/parts/")
        }
    assert got == everyday_local
    assert everyday_local["results/listing.txt"] == hashlib.sha256(LISTING).hexdigest()
    assert "results/upper/alpha.txt" not in got  # temp() files are gone, as locally
    assert "Removing temporary output" in done.stdout
    # Reference data was read where it lies and never written.
    assert reference.read_text() == REFERENCE_TEXT
    assert stat.S_IMODE(reference.stat().st_mode) == 0o444
    assert sorted(p.name for p in reference.parent.iterdir()) == ["genome.txt"]
    _assert_retry_asked_for_more_memory(done.stdout, workdir, since_ms)
    _assert_config_travelled_by_reference(workdir, reference)


@pytest.mark.parametrize("mode", ["files", "storage"])
def test_keep_going_and_rerun_incomplete_match_local(
    mode, interrupted_local, emulator_env, tmp_path
):
    workdir = copy_workflow(INTERRUPTED, tmp_path / "knot")
    before = file_digests(workdir)
    args = (*KNOT, *_storage_args(emulator_env, mode, "interrupted"))
    rerun = _interrupt_and_rerun(workdir, args)
    got = _outputs(mode, workdir, before, "interrupted")
    assert got == interrupted_local
    assert set(got) == {"results/good.txt", "results/slow.txt"}
    _assert_the_failed_job_can_be_followed(rerun.stdout, workdir, debug=mode == "files")


def _assert_the_failed_job_can_be_followed(stdout: str, workdir, debug: bool) -> None:
    """The failed job's Batch id was said when it was submitted; its whole log is saved;
    ``knot debug`` runs its container again here and it fails the same way."""
    submitted = re.search(r"knot: rule bad: Batch job (\S+) = jobid (\d+)", stdout)
    assert submitted, stdout[-6000:]
    batch_id = submitted[1]
    saved = workdir / ".snakemake" / "log" / "knot" / f"{batch_id}.log"
    assert "the bad branch fails on purpose" in saved.read_text()
    assert f"Its whole log (up to 8 MiB): {saved.relative_to(workdir)}" in stdout
    assert re.search(r"knot: rule +jobs +failed +retries +wall +cost", stdout), stdout[-3000:]
    if not debug:
        return
    done = subprocess.run(
        [sys.executable, "-m", "snakemake_executor_knot.cli", "--emulator", "debug", submitted[2]],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout + done.stderr
    assert f"knot: running the job in Batch job {batch_id}'s container" in done.stderr
    assert "the bad branch fails on purpose" in done.stdout + done.stderr


# ---- running and comparing


def _storage_args(env: dict, mode: str, name: str) -> tuple[str, ...]:
    return () if mode == "files" else storage_args(env, BUCKET, f"{name}-{os.getpid()}")


def _outputs(mode: str, workdir, before: dict, name: str) -> dict[str, str]:
    """What the run wrote: local files, or in storage mode the objects under the prefix,
    named as the local run names them (an absolute path's key holds the working
    directory, which differs between the two runs)."""
    if mode == "files":
        return outputs_of(workdir, before)
    prefix = f"{name}-{os.getpid()}/"
    absolute = str(workdir.resolve()).lstrip("/") + "/"
    s3 = boto3.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            key = obj["Key"][len(prefix) :].removeprefix(absolute)
            if key.rsplit("/", 1)[-1] in IGNORED_PARTS:  # as outputs_of leaves them out
                continue
            # A manifest is knot's, not the workflow's: its body, for the caller to check.
            manifest = key.endswith(".knot-manifest.json")
            found[key] = body.hex() if manifest else hashlib.sha256(body).hexdigest()
    # Nothing travelled through the host: no output was written locally.
    assert not (workdir / "results").exists()
    return found


def _assert_retry_asked_for_more_memory(stdout: str, workdir, since_ms: int) -> None:
    """Attempt 1 failed with mem_mb=1000; Snakemake resubmitted it and attempt 2's Batch
    job asked for twice the memory."""
    failed = re.search(r"Error in rule retried:.*?external_jobid: (\S+)", stdout, re.S)
    assert failed, stdout[-6000:]
    record = [j for j in latest_summary(workdir)["jobs"] if j["rule"] == "retried"]
    assert [j["status"] for j in record] == ["SUCCEEDED"], record
    jobs = boto3.client("batch").describe_jobs(jobs=[failed[1], record[0]["batch_id"]])["jobs"]
    by_id = {job["jobId"]: job for job in jobs}
    first, second = by_id[failed[1]], by_id[record[0]["batch_id"]]
    assert (first["status"], second["status"]) == ("FAILED", "SUCCEEDED")
    assert first["createdAt"] >= since_ms
    assert _memory(second) == 2 * _memory(first), (_memory(first), _memory(second))


def _assert_config_travelled_by_reference(workdir, reference) -> None:
    """Each job's spec record holds a reference to the run's one config object, never the
    config itself; the object holds the config, and its name and the reference hold its
    SHA-256."""
    s3, batch = boto3.client("s3"), boto3.client("batch")
    parents = {j["batch_id"].split(":")[0] for j in latest_summary(workdir)["jobs"]}
    refs = set()
    for job in batch.describe_jobs(jobs=sorted(parents))["jobs"]:
        env = {e["name"]: e["value"] for e in job["container"]["environment"]}
        bucket, key = env["KNOT_SPEC_URI"].removeprefix("s3://").split("/", 1)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for record in body.splitlines()[1::2]:  # proof lines and documents alternate
            document = json.loads(record)
            assert "config" not in document, document
            refs.add(json.dumps(document["config_ref"], sort_keys=True))
        assert b"every day" not in body
    assert len(refs) == 1, refs
    ref = json.loads(refs.pop())
    bucket, key = ref["uri"].removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == ref["sha256"]
    assert key == f"knot/specs/config/{ref['sha256']}.json"
    assert json.loads(body) == {
        "label": "every day",
        "marks": {"open": "[", "close": "]"},
        "reference": str(reference),
    }


def _memory(job: dict) -> int:
    requirements = job["container"]["resourceRequirements"]
    return int(next(r["value"] for r in requirements if r["type"] == "MEMORY"))


def _interrupt_and_rerun(workdir, args: tuple[str, ...]) -> subprocess.CompletedProcess:
    """--keep-going: kill Snakemake (SIGKILL, its whole process group) once the slow job
    runs; --unlock; re-run with --rerun-incomplete, which ends with the bad branch failed
    and every other output made."""
    _run_until_slow_job_runs(workdir, args)
    unlocked = snakemake(workdir, "--unlock")
    assert unlocked.returncode == 0, unlocked.stdout[-3000:]
    rerun = snakemake(workdir, *args, "--keep-going", "--rerun-incomplete")
    assert rerun.returncode != 0, rerun.stdout[-6000:]
    assert "Error in rule bad" in rerun.stdout, rerun.stdout[-6000:]
    assert "the bad branch fails on purpose" in rerun.stdout
    return rerun


def _run_until_slow_job_runs(workdir, args: tuple[str, ...]) -> None:
    extra = ("--keep-going", "--config", f"slow_seconds={SLOW_SECONDS}")
    process = start_snakemake(workdir, *args, *extra, new_session=True)
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if "rule slow:" in "".join(seen) and _slow_job_running(seen, "--executor" in args):
                break
        else:
            pytest.fail("the run ended before the slow job ran:\n" + "".join(seen)[-6000:])
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert (workdir / ".snakemake" / "incomplete").is_dir()


def _slow_job_running(seen: list[str], knot: bool) -> bool:
    """Locally the job runs once Snakemake prints it; under knot once Batch says so."""
    if not knot:
        return True
    after = "".join(seen).rpartition("rule slow:")[2]
    return bool(re.search(r"knot: Batch jobs: .*\bRUNNING", after))
