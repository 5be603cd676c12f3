"""The SubmitJob request (pure), and a rate-limited submitter."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from ..compute.resources import BatchResources
from ..errors import AwsError, RuleError, aws_error, error_code
from ..runtime.cache import BYTES_ENV as CACHE_BYTES_ENV
from ..runtime.cache import DIR_ENV as CACHE_DIR_ENV
from ..runtime.cache import MOUNT_POINT as CACHE_MOUNT_POINT
from ..runtime.contract import SPEC_DIGEST_ENV, SPEC_RECORD_ENV, SPEC_URI_ENV
from .tags import RULE_TAG

MAX_ARRAY_SIZE = 10_000
MAX_OVERRIDES_CHARS = 8192  # AWS limit on the serialised containerOverrides
THROTTLING_CODES = frozenset({"TooManyRequestsException", "ThrottlingException", "TooManyRequests"})


def _requirements(resources: BatchResources) -> list[dict]:
    reqs = [
        {"type": "VCPU", "value": str(resources.vcpus)},
        {"type": "MEMORY", "value": str(resources.memory_mib)},
    ]
    if resources.gpus > 0:
        reqs.append({"type": "GPU", "value": str(resources.gpus)})
    return reqs


def _cache_environment(cache_bytes: int) -> list[dict]:
    """Where the instance's input cache is mounted and the class's cap (runtime/cache.py);
    nothing when the class has no cache."""
    if cache_bytes <= 0:
        return []
    return [
        {"name": CACHE_DIR_ENV, "value": CACHE_MOUNT_POINT},
        {"name": CACHE_BYTES_ENV, "value": str(cache_bytes)},
    ]


def _check_array_size(array_size: int | None) -> None:
    if array_size is not None and not 1 <= array_size <= MAX_ARRAY_SIZE:
        raise ValueError(f"array_size must be between 1 and {MAX_ARRAY_SIZE}, not {array_size}")


def build_submit_request(
    *,
    job_name: str,
    job_definition_arn: str,
    job_queue: str,
    spec_uri: str,
    spec_record_bytes: int,
    spec_digest: str,
    resources: BatchResources,
    array_size: int | None = None,
    tags: Mapping[str, str] = {},
    rule: str,
    cache_bytes: int = 0,
) -> dict:
    """SubmitJob kwargs. The job specs live in S3 as records of ``spec_record_bytes``
    each (see jobspec.spec_records); only where to find them goes here."""
    _check_array_size(array_size)
    overrides = {
        "resourceRequirements": _requirements(resources),
        "environment": [
            {"name": SPEC_URI_ENV, "value": spec_uri},
            {"name": SPEC_RECORD_ENV, "value": str(spec_record_bytes)},
            {"name": SPEC_DIGEST_ENV, "value": spec_digest},
            *_cache_environment(cache_bytes),
        ],
    }
    if len(json.dumps(overrides)) >= MAX_OVERRIDES_CHARS:
        raise RuleError(
            f"Rule '{rule}': the Batch container overrides would exceed AWS's "
            f"{MAX_OVERRIDES_CHARS}-character limit (spec URI {spec_uri[:80]!r}...). "
            "Use a shorter --default-storage-prefix or bucket name."
        )
    request: dict = {
        "jobName": job_name,
        "jobQueue": job_queue,
        "jobDefinition": job_definition_arn,
        "containerOverrides": overrides,
        "tags": {**tags, RULE_TAG: rule},
        "propagateTags": True,
    }
    if array_size is not None and array_size >= 2:
        # Batch arrays have 2..10000 children; one job is submitted as a single job.
        request["arrayProperties"] = {"size": array_size}
    if resources.timeout_s is not None:
        request["timeout"] = {"attemptDurationSeconds": resources.timeout_s}
    return request


class TokenBucket:
    """At most ``rate`` acquisitions per second across threads, spaced evenly.

    Each caller reserves the next free slot under the lock and sleeps outside it, so
    waiting threads do not hold each other up beyond their own slot."""

    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token and return how long to wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            return max(0.0, -self._tokens / self.rate)

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)


def backoff_delay(attempt: int, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(cap, base * 2**attempt)


def _is_throttling(exc: ClientError) -> bool:
    return error_code(exc) in THROTTLING_CODES


class Submitter:
    """SubmitJob, kept under ``rate`` calls per second across threads, with its own
    bounded backoff on throttling (on top of botocore's retries)."""

    def __init__(
        self,
        batch_client,
        rate: float = 20.0,
        *,
        max_attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._batch = batch_client
        self.bucket = TokenBucket(rate, clock=clock, sleep=sleep)
        self._max_attempts = max(1, max_attempts)
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._rng = rng

    def backoff(self, retry: int) -> float:
        return backoff_delay(retry, self._base_delay, self._max_delay, self._rng)

    def submit(self, request: dict) -> str:
        """Submit one job and return its id."""
        rule = request.get("tags", {}).get(RULE_TAG)
        doing = f"submitting Batch job {request.get('jobName')}"
        throttled: ClientError | None = None
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(self.backoff(attempt - 1))
            self.bucket.acquire()
            try:
                return self._batch.submit_job(**request)["jobId"]
            except ClientError as exc:
                if not _is_throttling(exc):
                    raise aws_error(exc, doing, rule=rule, service="batch") from exc
                throttled = exc
            except BotoCoreError as exc:
                raise aws_error(exc, doing, rule=rule, service="batch") from exc
        raise AwsError(
            f"AWS Batch kept throttling SubmitJob ({self._max_attempts} attempts) while "
            f"{doing} for rule '{rule}'. Lower --knot-submit-rate, or check for other Batch "
            "clients in this account and region."
        ) from throttled
