"""Per-job Batch resources, the SubmitJob request (pure), and a rate-limited submitter."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from .errors import AwsError, RuleError, aws_error
from .settings import KnotConfig

DEFAULT_MEMORY_MIB = 2048
MIN_TIMEOUT_S = 60  # AWS rejects attemptDurationSeconds below 60
MAX_ARRAY_SIZE = 10_000
MAX_OVERRIDES_CHARS = 8192  # AWS limit on the serialised containerOverrides
SPEC_URI_ENV = "KNOT_SPEC_URI"
SPEC_RECORD_ENV = "KNOT_SPEC_RECORD_BYTES"
RULE_TAG = "knot:rule"
THROTTLING_CODES = frozenset({"TooManyRequestsException", "ThrottlingException", "TooManyRequests"})


@dataclass(frozen=True)
class BatchResources:
    vcpus: int
    memory_mib: int
    gpus: int
    timeout_s: int | None


def _number(rule: str, name: str, value: object) -> float:
    # bool is an int in Python, but `mem_mb=True` is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(
            f"Rule '{rule}': resource '{name}' must be a number, not {value!r}. "
            f"Set {name} to a number in the rule, e.g. {name}=4."
        )
    return value


def _memory_mib(rule: str, resources: Mapping[str, object]) -> int:
    key = "mem_mb" if "mem_mb" in resources else "mem_mib"
    if key not in resources:
        return DEFAULT_MEMORY_MIB
    mem = _number(rule, key, resources[key])
    if mem <= 0:
        raise RuleError(
            f"Rule '{rule}': resources {key}={mem} must be positive. Set e.g. {key}=4000, "
            f"or remove it to get the default of {DEFAULT_MEMORY_MIB} MiB."
        )
    return math.ceil(mem)


def _vcpus(rule: str, threads: object, config: KnotConfig) -> int:
    count = _number(rule, "threads", threads)
    if count < 1:
        raise RuleError(f"Rule '{rule}': threads={count} must be at least 1. Set threads: 1.")
    if count > config.max_vcpus:
        # Batch would leave such a job RUNNABLE forever, as no instance can hold it.
        raise RuleError(
            f"Rule '{rule}': threads={count} exceeds the compute environment's "
            f"{config.max_vcpus} vCPUs. Lower threads: or raise --knot-max-vcpus."
        )
    return math.ceil(count)


def _gpus(rule: str, resources: Mapping[str, object], config: KnotConfig) -> int:
    gpus = _number(rule, "gpu", resources.get("gpu", 0))
    if gpus < 0 or gpus != int(gpus):
        raise RuleError(f"Rule '{rule}': resources gpu={gpus} must be a whole number >= 0.")
    if gpus > 0 and not config.has_gpu_instances:
        raise RuleError(
            f"Rule '{rule}' asks for {int(gpus)} GPU(s), but the compute environments have "
            "no GPU instance types. Pass GPU instance types with --knot-instance-types, "
            "e.g. --knot-instance-types g4dn, or remove 'gpu' from the rule's resources."
        )
    return int(gpus)


def _timeout_s(rule: str, resources: Mapping[str, object]) -> int | None:
    if "runtime" not in resources:
        return None
    minutes = _number(rule, "runtime", resources["runtime"])
    if minutes <= 0:
        raise RuleError(
            f"Rule '{rule}': resources runtime={minutes} must be positive (minutes). "
            "Set e.g. runtime=30, or remove it for no time limit."
        )
    return max(MIN_TIMEOUT_S, math.ceil(minutes * 60))


def batch_resources(
    rule: str, threads: int, resources: Mapping[str, object], config: KnotConfig
) -> BatchResources:
    """Snakemake's threads and resources as Batch sizes; RuleError names any bad value."""
    return BatchResources(
        vcpus=_vcpus(rule, threads, config),
        memory_mib=_memory_mib(rule, resources),
        gpus=_gpus(rule, resources, config),
        timeout_s=_timeout_s(rule, resources),
    )


def _requirements(resources: BatchResources) -> list[dict]:
    reqs = [
        {"type": "VCPU", "value": str(resources.vcpus)},
        {"type": "MEMORY", "value": str(resources.memory_mib)},
    ]
    if resources.gpus > 0:
        reqs.append({"type": "GPU", "value": str(resources.gpus)})
    return reqs


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
    resources: BatchResources,
    array_size: int | None = None,
    tags: Mapping[str, str] = {},  # noqa: B006 - read only
    rule: str,
) -> dict:
    """SubmitJob kwargs. The job specs live in S3 as records of ``spec_record_bytes``
    each (see jobspec.spec_records); only where to find them goes here."""
    _check_array_size(array_size)
    overrides = {
        "resourceRequirements": _requirements(resources),
        "environment": [
            {"name": SPEC_URI_ENV, "value": spec_uri},
            {"name": SPEC_RECORD_ENV, "value": str(spec_record_bytes)},
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
    return exc.response.get("Error", {}).get("Code", "") in THROTTLING_CODES


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
