"""Run Snakemake on a benchmark workflow with one executor, against the counting server,
and collect what happened: the server's requests, the launcher's trace, the timings."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from .launch import cpu_seconds
from .server import CountingMotoServer, Request, counts
from .workflows import Workflow, seed_outputs

REGION = "us-east-1"
BUCKET = "knot-bench"
DUMMY_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REPO = Path(__file__).resolve().parent.parent
# Shorter than Snakemake's 10 s default, so the pipeline's stages follow each other
# quickly. The aws-batch plugin sets its own 5 s. Calls per cycle do not depend on it.
STATUS_SECONDS = 2


class RunFailed(RuntimeError):
    """Snakemake exited non-zero; the message carries the end of its output."""


@dataclass
class Run:
    """One Snakemake run as the benchmarks saw it."""

    executor: str
    workflow: Workflow
    launched: float  # time.time() just before the process started
    wall_s: float
    requests: list[Request]
    trace: dict  # from benchmarks.launch: cycles, cpu_s, peak_rss_kib
    first_rule_line: float | None  # when Snakemake first printed "rule <name>:"
    server_cpu_s: float = 0.0  # CPU of this process meanwhile: the moto server's work
    calls: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.calls = dict(counts(self.requests))

    def count(self, name: str) -> int:
        """Requests of ``service.Operation``, or of a whole service (``s3``)."""
        if "." in name:
            return self.calls.get(name, 0)
        return sum(n for key, n in self.calls.items() if key.startswith(name + "."))

    def first(self, name: str) -> float | None:
        return next((r.time for r in self.requests if f"{r.service}.{r.operation}" == name), None)


@dataclass
class Bench:
    """The counting server plus what every run shares: the bucket, the aws-batch
    plugin's queue and role, and a scratch folder."""

    server: CountingMotoServer
    root: Path
    queue_arn: str = ""
    role_arn: str = ""

    def client(self, service: str):
        return boto3.client(
            service, endpoint_url=self.server.endpoint, region_name=REGION, **DUMMY_KEYS
        )

    def setup(self) -> None:
        self.client("s3").create_bucket(Bucket=BUCKET)
        self.role_arn, self.queue_arn = create_plugin_queue(
            self.client("iam"), self.client("batch")
        )

    def env(self) -> dict[str, str]:
        """Dummy credentials, no real AWS configuration, and no Docker engine: moto runs
        no containers here, and a rule that tried to build an image must fail, not pull."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_"))}
        return {
            **keep,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_ENDPOINT_URL": self.server.endpoint,  # the aws-batch plugin's only way
            "KNOT_HOME": str(self.root / "knot-home"),
            "DOCKER_HOST": f"unix://{self.root / 'no-docker.sock'}",
            "PYTHONPATH": str(REPO),
        }

    def prepare(self, workflow: Workflow) -> Path:
        folder = workflow.write(self.root / "workflows")
        seed_outputs(self.client("s3"), BUCKET, workflow.name, workflow)
        return folder


def create_plugin_queue(iam, batch) -> tuple[str, str]:
    """The job role and job queue the aws-batch plugin asks for (it creates none itself)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "batch.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="bench-batch", AssumeRolePolicyDocument=json.dumps(trust))
    role_arn = role["Role"]["Arn"]
    env = batch.create_compute_environment(
        computeEnvironmentName="bench-plugin",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role_arn,
    )
    queue = batch.create_job_queue(
        jobQueueName="bench-plugin",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )
    return role_arn, queue["jobQueueArn"]


def executor_args(bench: Bench, executor: str) -> list[str]:
    endpoint = bench.server.endpoint
    if executor == "knot":
        return ["--executor", "knot", "--knot-endpoint-url", endpoint, "--knot-region", REGION]
    if executor == "aws-batch":
        return [
            "--executor", "aws-batch", "--aws-batch-region", REGION,
            "--aws-batch-job-queue", bench.queue_arn, "--aws-batch-job-role", bench.role_arn,
        ]  # fmt: skip
    return ["--executor", "local", "--cores", "2"]


def snakemake_args(bench: Bench, folder: Path, workflow: Workflow, executor: str) -> list[str]:
    endpoint = bench.server.endpoint
    return [
        "--snakefile", str(folder / "Snakefile"), "--directory", str(folder),
        "--jobs", str(max(workflow.jobs, 1)), "--forceall",
        "--seconds-between-status-checks", str(STATUS_SECONDS),
        "--default-storage-provider", "s3",
        "--default-storage-prefix", f"s3://{BUCKET}/{workflow.name}",
        "--storage-s3-endpoint-url", endpoint, "--storage-s3-region", REGION,
        "--storage-s3-access-key", "testing", "--storage-s3-secret-key", "testing",
        *executor_args(bench, executor),
    ]  # fmt: skip


def run(
    bench: Bench,
    workflow: Workflow,
    executor: str,
    timeout: float = 3600,
    first_job_only: bool = False,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> Run:
    """Run ``snakemake --forceall`` on ``workflow`` once; RunFailed if it fails. With
    ``first_job_only``, end Snakemake and its job processes (its own process group) once
    its first job started: for start-up times, without waiting for the rest."""
    folder = bench.prepare(workflow)
    trace_path = bench.root / f"trace-{executor}-{workflow.name}-{time.time_ns()}.json"
    args = [*snakemake_args(bench, folder, workflow, executor), *extra_args]
    cmd = [sys.executable, "-m", "benchmarks.launch", *args]
    env = {**bench.env(), "KNOT_BENCH_TRACE": str(trace_path), **(extra_env or {})}
    mark = bench.server.tally.mark()
    launched, cpu_before = time.time(), cpu_seconds()
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip

    def end_group() -> None:
        os.killpg(proc.pid, signal.SIGKILL)

    watcher = _RuleLineWatcher(proc.stderr, on_first=end_group if first_job_only else None)
    watcher.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RunFailed(
            f"{executor} on {workflow.name} did not finish in {timeout:.0f} s"
        ) from None
    wall, server_cpu = time.time() - launched, cpu_seconds() - cpu_before
    watcher.join()
    if code != 0 and not (first_job_only and watcher.first_rule):
        raise RunFailed(f"{executor} on {workflow.name} exited {code}:\n{watcher.tail()}")
    trace = json.loads(trace_path.read_text()) if trace_path.exists() else {"cycles": []}
    requests = bench.server.tally.since(mark)
    return Run(executor, workflow, launched, wall, requests, trace, watcher.first_rule, server_cpu)


# Snakemake prints "rule <name>:" ("localrule <name>:" under --executor local) as it
# hands a job to the executor, whichever executor it is.
_JOB_STARTS = re.compile(r"^(local)?rule \S+:$")


class _RuleLineWatcher(threading.Thread):
    """Reads Snakemake's log as it comes, noting when the first job started."""

    def __init__(self, stream, on_first=None) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.on_first = on_first
        self.first_rule: float | None = None
        self.lines: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            if self.first_rule is None and _JOB_STARTS.match(line.strip()):
                self.first_rule = time.time()
                if self.on_first:
                    self.on_first()
            self.lines.append(line)
            del self.lines[:-60]  # only the end is ever shown

    def tail(self) -> str:
        return "".join(self.lines)
