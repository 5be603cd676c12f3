"""Shared fixtures: in-process moto with Batch not running Docker, and API-call counting."""

from __future__ import annotations

import collections

import boto3
import pytest
from moto import mock_aws

from snakemake_executor_knot.clients import Clients
from snakemake_executor_knot.infra import Infra

# Session fixtures for the end-to-end tier: Docker engine, base image, emulator.
from .e2e_fixtures import base_image, docker_engine, emulator, emulator_env  # noqa: F401

REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials and region, and no real AWS config, for in-process moto."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
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
