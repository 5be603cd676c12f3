"""Running Snakemake in a subprocess on a copy of a workflow, and comparing its outputs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "workflow_examples"
# Files a run makes that are not workflow outputs. Snakemake, and knot's job as Snakemake's
# remote jobs do, touch an empty .snakemake_timestamp into directory() outputs; its time
# differs from run to run.
IGNORED_PARTS = {".snakemake", "profiles", "__pycache__", ".snakemake_timestamp"}
# Snakemake's arguments for a run under knot on the session's emulator.
KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "8", "--latency-wait", "5")


def copy_workflow(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".snakemake", "results", "logs"))
    return dest


def comparable_environment(extra: dict | None = None) -> dict:
    """os.environ without OPENBLAS_* settings. A host may pin OpenBLAS's kernel (this
    machine sets OPENBLAS_CORETYPE=Haswell); containers auto-detect theirs, and LAPACK
    results then differ in the last bits. Parity compares like with like."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    return {**env, **(extra or {})}


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: int = 900):
    """Run Snakemake; return the CompletedProcess (stdout and stderr merged)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=comparable_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def start_snakemake(workdir: Path, *args: str, new_session: bool = False) -> subprocess.Popen:
    """Snakemake in the background (stdout and stderr merged, as text). ``new_session``: in
    a process group of its own, so that a test can kill it whole, as a crash would."""
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=comparable_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )


def storage_args(env: dict, bucket: str, prefix: str) -> tuple[str, ...]:
    """Storage mode on the emulator: the S3 storage plugin's flags for s3://bucket/prefix."""
    return (
        "--default-storage-provider", "s3",
        "--default-storage-prefix", f"s3://{bucket}/{prefix}",
        "--storage-s3-endpoint-url", env["AWS_ENDPOINT_URL"],
        "--storage-s3-access-key", "testing", "--storage-s3-secret-key", "testing",
        "--storage-s3-region", "us-east-1",
    )  # fmt: skip


def file_digests(workdir: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    """sha256 of every file under workdir except knot's and Snakemake's own."""
    digests = {}
    for path in sorted(workdir.rglob("*")):
        rel = path.relative_to(workdir)
        if not path.is_file() or IGNORED_PARTS & set(rel.parts) or rel.as_posix() in skip:
            continue
        digests[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def outputs_of(workdir: Path, before: dict[str, str], benchmark_dirs=("benchmarks",)) -> dict:
    """The files a run added or changed, benchmark files (timings) excluded."""
    after = file_digests(workdir)
    return {
        path: digest
        for path, digest in after.items()
        if before.get(path) != digest and path.split("/")[0] not in benchmark_dirs
    }


def latest_summary(workdir: Path) -> dict:
    summaries = sorted((workdir / ".snakemake" / "knot").glob("run-*.json"))
    assert summaries, "knot wrote no run summary"
    return json.loads(summaries[-1].read_text())


def knot_report(workdir: Path, *args: str) -> str:
    """``knot report <args>`` on the latest run in ``workdir``; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "snakemake_executor_knot.cli", "report", *args],
        cwd=workdir,
        env=comparable_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def knot_report_rows(workdir: Path) -> list[dict]:
    """The per-rule rows of ``knot report --json`` on the latest run in ``workdir``."""
    return knot_report_json(workdir)["rules"]


def knot_report_json(workdir: Path) -> dict:
    """``knot report --json`` on the latest run in ``workdir``: one object."""
    return json.loads(knot_report(workdir, "--json"))


def bucket_digests(bucket: str, prefix: str) -> dict[str, str]:
    """sha256 of every object under ``s3://bucket/prefix``, by key relative to the prefix
    (boto3 from the environment: the emulator's endpoint in e2e tests), Snakemake's
    directory markers left out as ``outputs_of`` leaves them out."""
    s3 = boto3.client("s3")
    digests = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].rsplit("/", 1)[-1] == ".snakemake_timestamp":
                continue
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            digests[obj["Key"][len(prefix) :]] = hashlib.sha256(body).hexdigest()
    return digests
