"""Build every boto3 client in one place, so the rest of knot takes them as arguments.

Region, profile and endpoint follow boto3's own lookup (environment, ~/.aws/config,
AWS_ENDPOINT_URL); knot's flags override them. The region is also read from AWS_REGION,
as the AWS CLI and the other SDKs read it first: boto3 reads only AWS_DEFAULT_REGION and
the profile. With --knot-emulator the endpoint and dummy credentials come from the
running emulator's state file.
"""

from __future__ import annotations

import collections
import os
import threading
from dataclasses import dataclass, field
from typing import Literal, TypeGuard, get_args

import boto3
import botocore.config
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..config.settings import KnotConfig
from ..emulator.state import emulator_state
from ..errors import NO_REGION, SettingError, aws_error
from ..runtime.contract import CHECKSUMS

# Standard retry mode backs off on throttling (TooManyRequestsException and friends).
_RETRIES = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 8},
    max_pool_connections=32,
    **CHECKSUMS,
)

Service = Literal[
    "batch", "s3", "ecr", "logs", "cloudformation", "iam", "ec2", "sts", "secretsmanager", "ecs",
]  # fmt: skip
SERVICES: tuple[Service, ...] = get_args(Service)


def is_service(name: str) -> TypeGuard[Service]:
    """Whether ``name`` is a client ``Clients`` builds (an attribute of it)."""
    return name in SERVICES


@dataclass
class Clients:
    """Lazily built boto3 clients sharing one session. ``calls`` counts every API call
    made through them, by "service.Operation", for run summaries and benchmarks."""

    session: boto3.Session
    endpoint_url: str | None = None
    calls: collections.Counter = field(default_factory=collections.Counter)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _built: dict = field(default_factory=dict, repr=False)

    @property
    def region(self) -> str:
        return self.session.region_name

    def client(self, service: Service):
        with self._lock:
            if service not in self._built:
                self._built[service] = self._build(service)
            return self._built[service]

    def __getattr__(self, service: str):
        if is_service(service):
            return self.client(service)
        raise AttributeError(service)

    def _build(self, service: Service):
        client = self.session.client(service, endpoint_url=self.endpoint_url, config=_RETRIES)
        client.meta.events.register("before-call.*.*", self._count)
        return client

    def _count(self, event_name: str, **_kwargs) -> None:
        # before-call fires once per API call; retries fire before-send only.
        _, service, operation = event_name.split(".", 2)
        with self._lock:
            self.calls[f"{service}.{operation}"] += 1


def make_clients(config: KnotConfig) -> Clients:
    """Create the session and check region and credentials before any call is made."""
    endpoint, region = config.endpoint_url, config.region
    key = None  # None: boto3's own lookup
    if not config.emulator:
        # Before AWS_DEFAULT_REGION and the profile, as the AWS CLI does; boto3 ignores it.
        region = region or os.environ.get("AWS_REGION") or None
    if config.emulator:
        # The emulator accepts any credentials; fixed dummy ones keep real keys out of it.
        state = emulator_state()
        endpoint = endpoint or state["endpoint"]
        region = region or state.get("region", "us-east-1")
        key = "testing"
    try:
        session = boto3.Session(
            profile_name=config.profile,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=key,
        )
    except BotoCoreError as exc:
        raise SettingError(
            f"Could not load AWS profile '{config.profile}': {exc}", "profile"
        ) from exc
    _check_region(session, config)
    if session.get_credentials() is None:
        raise aws_error(NoCredentialsError(), "starting knot")
    # With no endpoint given, boto3 reads AWS_ENDPOINT_URL itself.
    return Clients(session=session, endpoint_url=endpoint)


def _check_region(session: boto3.Session, config: KnotConfig) -> None:
    region = session.region_name
    if not region:
        raise SettingError(NO_REGION.format(where=""), "region")
    known = set(session.get_available_regions("batch"))
    for partition in ("aws-cn", "aws-us-gov"):
        known |= set(session.get_available_regions("batch", partition_name=partition))
    if region not in known and not config.emulator:
        raise SettingError(
            f"AWS region '{region}' does not exist or has no AWS Batch. Pick one of: "
            f"{', '.join(sorted(known))}.",
            "region",
        )


def caller_identity(clients: Clients) -> dict:
    """STS GetCallerIdentity: the cheapest check that credentials work."""
    try:
        return clients.sts.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "checking your AWS credentials", service="sts") from exc
