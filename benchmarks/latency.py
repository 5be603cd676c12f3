"""Latency with real containers (issue 12): a 20-way fan-out of ``shell:`` jobs plus one job
that reduces them, on knot's emulator (moto's Batch runs each job as a Docker container), in
storage mode, knot against snakemake-executor-plugin-aws-batch, each at its default settings
(no --seconds-between-status-checks), one after the other on the same emulator and queue.

knot runs once first to create its stack and push the rule images (a second run of a
workflow finds both); the aws-batch plugin's image, Snakemake with its plugins (what its jobs
run), is built before either measured run. Each of that plugin's jobs first runs
``pip install --target .snakemake/pip-deployments snakemake-storage-plugin-s3`` (its default
``auto_deploy_default_storage_provider``), which downloads the plugin and its dependencies
from PyPI every time: 20 at once over this machine's network ran past the plugin's 300 s
task timeout, and even offline, writing boto3 and botocore into each of 20 containers at once
took minutes. Its image therefore carries the wheels, points pip at them offline, and
installs the storage plugin alone, its dependencies being in the image already
(``PIP_NO_INDEX``, ``PIP_FIND_LINKS``, ``PIP_NO_DEPS``): the install step stays, its
download and copies go, which favours the plugin. Each run's wall time is from process launch to
exit. knot's run record then says where each second went (``report.phases.where_time_went``).

``python -m benchmarks --only latency`` runs it (Docker engine and the knot-base image needed).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import boto3

from snakemake_executor_knot.aws.stack import infra_from_stack
from snakemake_executor_knot.image.builder import docker_client
from snakemake_executor_knot.report.phases import where_time_went
from snakemake_executor_knot.report.records import parse_run

from .images import TAG, build, dockerfile_context, snakemake_image
from .overhead import knot_cli
from .report import Row, Target

FANOUT = 20
BUCKET = "knot-latency"
RATIO_TARGET = Target("<=", 0.25, on="ratio")
REPO = Path(__file__).resolve().parent.parent
PLUGIN_IMAGE = TAG.format(name="snakemake-offline")
# The plugin kills a job after 300 s by default (Batch's attemptDurationSeconds); on this
# 2-core machine under the load of other test sessions its jobs took longer than that. A
# longer limit changes nothing while jobs run, it only lets them finish.
TASK_TIMEOUT_S = 1800
OFFLINE_DOCKERFILE = f"""FROM {TAG.format(name="snakemake")}
RUN pip download --no-cache-dir --dest /opt/wheels snakemake-storage-plugin-s3=={{storage}}
ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/opt/wheels PIP_NO_DEPS=1 PIP_DISABLE_PIP_VERSION_CHECK=1
"""

SNAKEFILE = """\
N = {n}

rule all:
    input:
        "total.txt",

rule part:
    output:
        "parts/{{i}}.txt",
    shell:
        "echo {{wildcards.i}} > {{output}}"

rule total:
    input:
        expand("parts/{{i}}.txt", i=range(N)),
    output:
        "total.txt",
    shell:
        "cat {{input}} > {{output}}"
"""


@dataclass
class Timed:
    wall_s: float
    launched: float
    trace: dict
    folder: Path


def latency_rows() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="knot-latency-") as tmp:
        return measure(Path(tmp))


def measure(root: Path) -> list[Row]:
    plugin_image()
    env = _env(root)
    knot_cli("emulator", "start", "--port", "0", "--stop-with", str(os.getpid()), env=env)
    try:
        state = json.loads(knot_cli("emulator", "status", env=env))
        env["AWS_ENDPOINT_URL"] = state["endpoint"]
        _client(state, "s3").create_bucket(Bucket=BUCKET)
        run(root, "warm-up", _knot_args(), env)  # the stack and the images, once
        knot = run(root, "knot", _knot_args(), env)
        plugin = run(root, "aws-batch", _plugin_args(state), env)
    finally:
        knot_cli("emulator", "stop", env=env)
    record = parse_run(json.loads(latest_record(knot.folder).read_text()))
    return rows(knot, plugin, where_time_went(record, knot.launched, knot.launched + knot.wall_s))


def plugin_image() -> None:
    """What the aws-batch plugin's jobs run, with its storage plugin's wheels (see above)."""
    docker = docker_client()
    snakemake_image(docker)
    version = importlib.metadata.version("snakemake-storage-plugin-s3")
    build(docker, dockerfile_context(OFFLINE_DOCKERFILE.format(storage=version)), PLUGIN_IMAGE)


def _env(root: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_"))}
    return {
        **keep,
        "KNOT_HOME": str(root / "knot-home"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PYTHONPATH": str(REPO),
        "KNOT_BENCH_UNPRIVILEGED": "1",  # see benchmarks/launch.py
    }


def _client(state: dict, service: str):
    return boto3.client(
        service, endpoint_url=state["endpoint"], region_name=state.get("region", "us-east-1"),
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def _knot_args() -> list[str]:
    return ["--executor", "knot", "--knot-emulator"]


def _plugin_args(state: dict) -> list[str]:
    """The plugin creates no queue or role: it runs in knot's, on the same emulator."""
    stacks = _client(state, "cloudformation").describe_stacks(StackName="knot")["Stacks"]
    infra = infra_from_stack(stacks[0], state.get("region", "us-east-1"))
    return [
        "--executor", "aws-batch", "--aws-batch-region", infra.region,
        "--aws-batch-job-queue", infra.job_queue_arn, "--aws-batch-job-role", infra.job_role_arn,
        "--container-image", PLUGIN_IMAGE, "--aws-batch-task-timeout", str(TASK_TIMEOUT_S),
    ]  # fmt: skip


def run(root: Path, name: str, executor: list[str], env: dict) -> Timed:
    """One Snakemake run of the workflow under ``root/name``, its outputs under a storage
    prefix of its own; RuntimeError with the end of its log if it fails."""
    folder = root / name
    folder.mkdir()
    (folder / "Snakefile").write_text(SNAKEFILE.format(n=FANOUT))
    trace = folder / "trace.json"
    args = [
        "--jobs", str(FANOUT + 1), "--default-storage-provider", "s3",
        "--default-storage-prefix", f"s3://{BUCKET}/{name}",
        "--storage-s3-endpoint-url", env["AWS_ENDPOINT_URL"],
        "--storage-s3-access-key", "testing", "--storage-s3-secret-key", "testing",
        *executor,
    ]  # fmt: skip
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.launch", *args], cwd=folder,
        env={**env, "KNOT_BENCH_TRACE": str(trace)}, capture_output=True, text=True,
        timeout=1800,
    )  # fmt: skip
    wall = time.time() - launched
    if done.returncode != 0:
        raise RuntimeError(f"{name} run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Timed(wall, launched, json.loads(trace.read_text()), folder)


def latest_record(folder: Path) -> Path:
    return max((folder / ".snakemake" / "knot").glob("run-*.json"))


def rows(knot: Timed, plugin: Timed, spent: list[tuple[str, float, str]]) -> list[Row]:
    section = f"latency (fan-out {FANOUT} + reduce, emulator)"
    out = [
        Row(section, "wall time (s), each at its defaults", knot.wall_s, plugin.wall_s,
            "aws-batch", RATIO_TARGET),
        Row(section, "status cycles with active jobs", len(knot.trace["cycles"]),
            len(plugin.trace["cycles"]), "aws-batch"),
    ]  # fmt: skip
    for label, seconds, owner in spent:
        out.append(Row(section, f"knot's critical path: {label} (s)", seconds, note=owner))
    return out
