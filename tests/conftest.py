"""Shared fixtures: in-process moto with Batch not running Docker, API-call counting, a
queue to submit to, and one stand-in for Snakemake's jobs."""

from __future__ import annotations

import collections
import os
import time
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws
from moto.batch.models import ComputeEnvironment, JobQueue
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models.route_tables import RouteTable
from moto.s3.models import s3_backends
from snakemake.io import IOFile
from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, ResourceList, Wildcards

from snakemake_executor_knot.aws.clients import Clients
from snakemake_executor_knot.aws.jobdef import JobDefinitions
from snakemake_executor_knot.aws.stack import Infra
from snakemake_executor_knot.aws.submit import Submitter, build_submit_request
from snakemake_executor_knot.compute.resources import BatchResources
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.emulator.patches.cloudformation import (
    delete_batch_resource,
    delete_route_table,
)

# Session fixtures for the end-to-end tier: Docker engine, base image, emulator.
from .e2e.fixtures import (  # noqa: F401
    base_image,
    docker_engine,
    emulator,
    emulator_env,
    faults,
)

REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials and region, and no real AWS config, for in-process moto."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # knot's own settings from the caller's shell would change what 'knot' does.
    for name in [n for n in os.environ if n.startswith("SNAKEMAKE_KNOT_")] + ["SNAKEMAKE_PROFILE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("KNOT_HOME", str(tmp_path / "knot-home"))


@pytest.fixture
def moto(aws_env):
    """moto in-process; Batch jobs complete without Docker."""
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


@pytest.fixture
def clients(moto) -> Clients:
    return Clients(session=boto3.Session(region_name=REGION))


class CallCounter:
    """Counts AWS API calls per 'service.Operation' on a Clients' boto3 clients."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def attach(self, clients: Clients, services=("batch", "s3", "ecr", "cloudformation", "logs")):
        for service in services:
            clients.client(service).meta.events.register("before-call.*.*", self._count)
        return self

    def _count(self, event_name: str, **_kwargs) -> None:
        _, service, operation = event_name.split(".", 2)
        self.counts[f"{service}.{operation}"] += 1

    def __getitem__(self, key: str) -> int:
        return self.counts[key]

    def reset(self) -> None:
        self.counts.clear()


def corrupt_object(bucket: str, key: str) -> None:
    """Flip the first byte of an object stored in in-process moto, behind S3's back: its
    stored checksum no longer matches the bytes a GET returns."""
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[key]
    buffer = stored._value_buffer
    buffer.seek(0)
    first = buffer.read(1)
    buffer.seek(0)
    buffer.write(bytes([first[0] ^ 0xFF]))
    buffer.seek(0)


@pytest.fixture
def calls(clients) -> CallCounter:
    return CallCounter().attach(clients)


def make_infra(**overrides) -> Infra:
    """A real Infra with test values, for tests that do not need the stack itself."""
    values = {
        "stack_name": "knot",
        "region": REGION,
        "bucket": "knot-bucket",
        "repository_name": "knot",
        "repository_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/knot",
        "job_queue_arn": "arn:aws:batch:us-east-1:123456789012:job-queue/knot",
        "log_group": "/knot/jobs",
        "job_role_arn": "arn:aws:iam::123456789012:role/knot-job",
    }
    return Infra(**{**values, **overrides})


@pytest.fixture
def plain_clients(aws_env) -> Clients:
    """Clients with no emulator behind them, for Stubber."""
    return Clients(session=boto3.Session(region_name=REGION))


@pytest.fixture
def deletable_stack_resources(monkeypatch):
    """The emulator's fixes: moto's CloudFormation never deletes an AWS::EC2::RouteTable
    (so the VPC, and the stack, cannot go), a job queue or a compute environment."""
    monkeypatch.setattr(RouteTable, "delete", delete_route_table, raising=False)
    monkeypatch.setattr(ComputeEnvironment, "delete", delete_batch_resource, raising=False)
    monkeypatch.setattr(JobQueue, "delete", delete_batch_resource, raising=False)


# --- a queue to submit to -------------------------------------------------------------------

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/knot:fit-0123abcd"
MOTO_LOG_GROUP = "/aws/batch/job"  # moto writes every job's log here


def _queue_infra(clients: Clients) -> Infra:
    role = clients.iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
    env = clients.batch.create_compute_environment(
        computeEnvironmentName="knot-test",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role["Role"]["Arn"],
    )["computeEnvironmentArn"]
    queue = clients.batch.create_job_queue(
        jobQueueName="knot-test",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
    )["jobQueueArn"]
    return make_infra(job_queue_arn=queue)


class Batch:
    """Submits jobs to moto the way the executor does: job definition, request, submitter."""

    def __init__(self, clients: Clients) -> None:
        self.infra = _queue_infra(clients)
        self.definition = JobDefinitions(clients.batch, self.infra, KnotConfig()).arn_for(IMAGE)
        self.submitter = Submitter(clients.batch, rate=1000)

    def submit(self, name: str, array_size: int | None = None, rule: str = "fit") -> str:
        request = build_submit_request(
            job_name=name,
            job_definition_arn=self.definition,
            job_queue=self.infra.job_queue_arn,
            spec_uri=f"s3://knot-bucket/specs/{name}.jsonl",
            spec_record_bytes=1000,
            spec_digest="00" * 32,
            resources=BatchResources(1, 512, 0, None),
            array_size=array_size,
            rule=rule,
        )
        return self.submitter.submit(request)


@pytest.fixture
def batch(clients) -> Batch:
    return Batch(clients)


def put_log(clients: Clients, group: str, stream: str, lines: list[str]) -> None:
    """Write ``lines`` to a CloudWatch log stream, as a job would."""
    logs = clients.logs
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


# --- a stand-in for Snakemake's jobs ----------------------------------------------------------


class FakeJob(SimpleNamespace):
    """A Snakemake job's attributes, made of Snakemake's own named lists. Hashable by
    identity, as Snakemake's DAG keys its dependencies by job."""

    __hash__ = object.__hash__


def named(cls, items):
    """A Snakemake named list of ``cls`` from a list (no names) or a dict (one name per
    item, in order)."""
    if not isinstance(items, dict):
        return cls(list(items))
    values = cls(list(items.values()))
    for index, name in enumerate(items):
        values._set_name(name, index)
    return values


def _files(items):
    wrap = [IOFile(f, rule=None) for f in (items.values() if isinstance(items, dict) else items)]
    return dict(zip(items, wrap, strict=True)) if isinstance(items, dict) else wrap


def fake_job(
    *,
    rule: str = "fit",
    jobid: int = 7,
    input=(),
    output=(),
    log=(),
    params=None,
    wildcards=None,
    resources=None,
    threads: int = 1,
    shellcmd: str | None = None,
    script: str | None = None,
    config=None,
) -> FakeJob:
    """One job of ``rule``: files are paths (or ``directory(...)``), in a list or by name."""
    wildcards = wildcards or {}
    outputs = named(OutputFiles, _files(output))
    return FakeJob(
        rule=SimpleNamespace(
            name=rule,
            shellcmd=shellcmd,
            script=script,
            notebook=None,
            output=outputs,
            workflow=SimpleNamespace(config=config or {}),
        ),
        jobid=jobid,
        is_local=False,
        input=named(InputFiles, _files(input)),
        output=outputs,
        log=named(Log, _files(log)),
        benchmark=None,
        params=params if isinstance(params, Params) else named(Params, params or {}),
        wildcards=named(Wildcards, wildcards),
        wildcards_dict=dict(wildcards),
        resources=ResourceList(fromdict={"_cores": threads, **(resources or {})}),
        threads=threads,
        log_info=lambda: None,
    )
