"""The run record, ``.snakemake/knot/run-<run_id>.json``: for every job, when the host handed
it over, submitted it and reported it, Batch's own times, attempts and reason, and what the
container measured (its usage document). ``knot report`` reads it (report/records.py holds the
schema and the checks).

The usage documents come from the jobs, so they are hostile input: only known fields of the
right type are kept.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from botocore.exceptions import BotoCoreError, ClientError

from .. import __version__
from ..aws.clients import Clients
from ..aws.hosts import find_container_instances, instance_types
from ..aws.status import JobState
from ..compute.resources import BatchResources
from ..config.classes import DEFAULT_CLASS
from ..config.settings import KnotConfig
from ..errors import KnotError, StagingError
from ..jobs.group import is_group, job_key, job_label
from ..report.pricing import choose_instance, load_prices, region_prices, spot_history
from ..runtime import jsondoc
from ..runtime.contract import usage_key

if TYPE_CHECKING:
    from ..jobs.group import AnyJob

RUN_DIR = Path(".snakemake", "knot")
USAGE_FETCHERS = 16  # parallel GETs of usage documents at the end of a run
MAX_USAGE_BYTES = 64 * 1024  # a usage document is a few hundred bytes
MAX_MEMBERS = 500  # a group job's per-member usage kept in the record
USAGE_NUMBERS = (
    "start",
    "end",
    "wall_s",
    "cpu_s",
    "peak_rss_mb",
    "stage_in_s",
    "stage_in_bytes",
    "run_s",
    "stage_out_s",
    "stage_out_bytes",
)


@dataclass
class JobEntry:
    """One Snakemake job as the host saw it; becomes one object of the record's ``jobs``."""

    jobid: int
    rule: str
    handed_over: float
    batch_id: str | None = None
    requested: dict = field(default_factory=dict)
    submitted: float | None = None
    seen_finished: float | None = None
    reported: float | None = None
    state: JobState | None = None
    usage_at: tuple[str, str] | None = None  # (bucket, key) of the usage document
    usage: dict = field(default_factory=dict)
    adopted: bool = False
    instance_type: str | None = None
    instance_type_source: str | None = None  # "batch" (ECS said so) or "estimate"
    reclaims: int = 0  # attempts spot took back, over every Batch job the job became
    reclaimed_s: float = 0.0
    wildcards: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        state = self.state
        return {
            "jobid": self.jobid,
            "rule": self.rule,
            "wildcards": self.wildcards,
            "batch_id": self.batch_id,
            "status": state.status if state else None,
            "exit_code": state.exit_code if state else None,
            "attempts": state.attempts if state else None,
            "reason": state.reason if state else None,
            "requested": self.requested,
            "instance_type": self.instance_type,
            "instance_type_source": self.instance_type_source,
            "adopted": self.adopted,
            "reclaims": {"count": self.reclaims, "seconds": round(self.reclaimed_s, 3)},
            "host": {
                "handed_over": self.handed_over,
                "submitted": self.submitted,
                "seen_finished": self.seen_finished,
                "reported": self.reported,
            },
            "batch": {
                "created": state.created if state else None,
                "started": state.started if state else None,
                "stopped": state.stopped if state else None,
            },
            "usage": self.usage,
        }


def requested(resources: BatchResources) -> dict:
    return {
        "vcpus": resources.vcpus,
        "memory_mib": resources.memory_mib,
        "gpus": resources.gpus,
        "compute_class": resources.compute_class,
    }


class RunLog:
    """Collects the job entries of one run, from any thread, and the run's own times: when
    the process started, the host steps before the first submission (``steps``: name ->
    [start, end]) and when the run ended."""

    def __init__(self, run_id: str, clock=time.time) -> None:
        self.run_id = run_id
        self.clock = clock
        self.started = clock()
        self.process_started = process_start_time()
        self.steps: dict[str, list[float]] = {}
        self.ended: float | None = None
        self.jobs: dict[int, JobEntry] = {}
        self.usage_errors: list[StagingError] = []  # usage documents refused (fetch_usage)
        self.image_builds: list[dict] = []  # each image found, or built and pushed (builder.py)
        self.rule_order: list[str] = []  # DAG order (order.py), rules seen later appended
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time one host step (stack check, images, ...); a repeated step adds up."""
        start = self.clock()
        try:
            yield
        finally:
            first, spent = self.steps.get(name, [start, start])
            self.steps[name] = [first, first + (spent - first) + self.clock() - start]

    def handed_over(self, jobs: Iterable[AnyJob]) -> None:
        now = self.clock()
        with self._lock:
            for job in jobs:
                key = job_key(job)  # a group job: one entry, by its first member's jobid
                wildcards = job_wildcards(job)
                self.jobs[key] = JobEntry(key, job_label(job), now, wildcards=wildcards)
                if job_label(job) not in self.rule_order:  # first seen after the start
                    self.rule_order.append(job_label(job))

    def submitted(self, jobid: int, batch_id: str, resources, usage_at, adopted=False) -> None:
        with self._lock:
            entry = self.jobs[jobid]
            entry.batch_id, entry.usage_at, entry.adopted = batch_id, usage_at, adopted
            entry.requested = requested(resources)
            entry.submitted = self.clock()

    def finished(self, jobid: int, state: JobState) -> None:
        with self._lock:
            entry = self.jobs[jobid]
            entry.state, entry.seen_finished = state, self.clock()
            entry.reclaims += state.reclaims
            entry.reclaimed_s += state.reclaimed_s

    def reclaimed(self, jobid: int, state: JobState, batch_id: str) -> None:
        """Spot reclaimed the job's Batch job out; it goes on as Batch job ``batch_id``."""
        with self._lock:
            entry = self.jobs[jobid]
            entry.reclaims += state.reclaims
            entry.reclaimed_s += state.reclaimed_s
            entry.batch_id = batch_id

    def reported(self, jobid: int) -> None:
        with self._lock:
            self.jobs[jobid].reported = self.clock()

    def fetch_usage(self, s3) -> int:
        """GET every finished job's usage document, in parallel; returns how many were read.
        A document the host refuses leaves its job's usage empty and is kept, as a
        ``StagingError`` naming the job, in ``usage_errors``."""
        wanted = [e for e in self.jobs.values() if e.usage_at and e.state and e.state.finished]
        with ThreadPoolExecutor(USAGE_FETCHERS) as pool:
            found = list(pool.map(lambda e: self._usage_of(s3, e), wanted))
        for entry, usage in zip(wanted, found, strict=True):
            entry.usage = usage
        self.usage_errors.sort(key=str)  # the threads' order is not the jobs'
        return sum(1 for usage in found if usage)

    def _usage_of(self, s3, entry: JobEntry) -> dict:
        assert entry.usage_at is not None
        try:
            return read_usage(s3, *entry.usage_at)
        except jsondoc.BadDocument as exc:
            error = StagingError(f"Rule '{entry.rule}', AWS Batch job {entry.batch_id}: {exc}")
            with self._lock:
                self.usage_errors.append(error)
            return {}

    def finished_entries(self) -> list[JobEntry]:
        return [e for e in self.jobs.values() if e.batch_id and e.state and e.state.finished]

    def find_instance_types(self, batch, ecs) -> int:
        """Each finished job's instance type as ECS reports it (see aws.hosts); returns how
        many were found. Jobs the status checks described already carry their instance."""
        entries = self.finished_entries()
        where: dict[str, str | None] = {
            e.batch_id: e.state.container_instance for e in entries if e.batch_id and e.state
        }
        missing = [job_id for job_id, arn in where.items() if arn is None]
        where.update(find_container_instances(batch, missing))
        types = instance_types(ecs, [arn for arn in where.values() if arn])
        for entry in entries:
            entry.instance_type = types.get(where.get(entry.batch_id or "") or "")
            entry.instance_type_source = "batch" if entry.instance_type else None
        return sum(1 for e in entries if e.instance_type)

    def estimate_instance_types(
        self, allowed: Mapping[str, tuple[str, ...]], region: str | None
    ) -> None:
        """Where no instance exists to ask about (the emulator): the cheapest type the
        compute environment of the job's class (``allowed``: instance types by class name)
        may choose that fits its request, marked an estimate."""
        _, prices = region_prices(load_prices(), region)
        for entry in self.finished_entries():
            wanted = entry.requested
            types = allowed.get(wanted.get("compute_class") or DEFAULT_CLASS)
            if not wanted.get("vcpus") or not wanted.get("memory_mib") or not types:
                continue
            choice = choose_instance(
                wanted["vcpus"], wanted["memory_mib"], types, prices, wanted.get("gpus") or 0
            )
            if choice is not None:
                entry.instance_type, entry.instance_type_source = choice.instance.name, "estimate"

    def as_dict(self, pricing: dict, calls: dict, images: dict) -> dict:
        return {
            "run_id": self.run_id,
            "process_started": self.process_started,
            "started": self.started,
            "steps": self.steps,
            "ended": self.ended,
            "pricing": pricing,
            "calls": dict(sorted(calls.items())),
            "images": images,
            "image_builds": self.image_builds,
            "rule_order": self.rule_order,
            "versions": versions(),
            "command": list(sys.argv),
            "jobs": [entry.as_dict() for _, entry in sorted(self.jobs.items())],
        }


def job_wildcards(job: AnyJob) -> dict[str, str]:
    """A single job's wildcards as text; a group job's members each have their own: none."""
    if is_group(job):
        return {}
    return {str(k): str(v) for k, v in dict(getattr(job, "wildcards_dict", {})).items()}


def versions() -> dict[str, str]:
    """The versions that shaped the run, for the report."""
    found = {"knot": __version__, "python": platform.python_version()}
    for name, dist in (("snakemake", "snakemake"), ("boto3", "boto3")):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(dist)
    return found


def process_start_time() -> float | None:
    """When this process started, in epoch seconds, from Linux's /proc (None elsewhere):
    the run's timeline then shows Snakemake's own start-up before knot was loaded."""
    try:
        with open("/proc/self/stat") as stat:
            # Field 22, after the parenthesised name (which may hold spaces): clock ticks
            # from boot to the process's start. Measured against the boot clock, not
            # /proc/stat's btime, which is rounded to whole seconds.
            ticks = int(stat.read().rpartition(")")[2].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time() - age


def usage_location(bucket: str, spec_key: str, index: int) -> tuple[str, str]:
    return bucket, usage_key(spec_key, index)


def read_usage(s3, bucket: str, key: str) -> dict:
    """The checked usage document at ``s3://bucket/key``; {} when S3 has none or cannot give
    it (a job that died before its end sends none). One too large, nested too deeply or
    not JSON raises ``jsondoc.BadDocument``."""
    where = f"its usage document s3://{bucket}/{key}"
    try:
        # One byte past the cap, so that a document over it is told from one at it.
        body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{MAX_USAGE_BYTES}")["Body"]
        data = jsondoc.read_capped(body, MAX_USAGE_BYTES, where)
    except (BotoCoreError, ClientError):
        return {}
    return clean_usage(jsondoc.parse(data, where))


def clean_usage(data: object) -> dict:
    """Only the known fields, as finite non-negative numbers (exit status: an integer)."""
    if not isinstance(data, dict):
        return {}
    usage: dict[str, object] = {}
    for name in USAGE_NUMBERS:
        value = data.get(name)
        if _number(value) and math.isfinite(value) and value >= 0:
            usage[name] = float(value)
    status = data.get("exit_status")
    if isinstance(status, int) and not isinstance(status, bool) and -(2**31) <= status < 2**31:
        usage["exit_status"] = status
    members = data.get("members")
    if isinstance(members, list) and len(members) <= MAX_MEMBERS:
        usage["members"] = [m for m in map(_member_usage, members) if m]
    return usage


def _member_usage(data: object) -> dict | None:
    """One member of a group job: its rule, jobid, run and CPU seconds."""
    if not isinstance(data, dict) or not isinstance(data.get("rule"), str):
        return None
    if not data["rule"].isidentifier() or not _number(data.get("jobid")):
        return None
    times = {k: float(data[k]) for k in ("run_s", "cpu_s") if _number(data.get(k))}
    return {"rule": data["rule"], "jobid": int(data["jobid"]), **times}


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 1e18


def pricing(config: KnotConfig, region: str | None) -> dict:
    return {
        "region": region,
        "market": "spot" if config.spot else "on-demand",
        "emulator": config.emulator,
        "instance_types": list(config.instance_types),
    }


def write_record(record: dict, directory: Path = RUN_DIR) -> Path:
    """Write the record atomically (a reader never sees half a file)."""
    path = Path(directory, f"run-{record['run_id']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(path)
    return path


def close_record(
    run_log: RunLog, clients: Clients, config: KnotConfig, images: dict, warn: Callable[[str], None]
) -> Path:
    """At the end of a run: the jobs' usage documents and instance types, then the record."""
    with run_log.step("usage documents"):
        run_log.fetch_usage(clients.s3)
        _instance_types(run_log, clients, config, warn)
    if run_log.usage_errors:
        warn(usage_warning(run_log.usage_errors))
    run_log.ended = time.time()
    record = run_log.as_dict(pricing(config, clients.region), clients.calls, images)
    record["spot_prices"] = run_spot_prices(run_log, clients, config)
    return write_record(record)


def run_spot_prices(run_log: RunLog, clients: Clients, config: KnotConfig) -> dict | None:
    """The spot prices of the instance types the run's jobs ran on, over the run, from the
    account's history (``spot_history``); None for on-demand, on the emulator (its history
    is a placeholder) or when the history cannot be read."""
    if not config.spot or config.emulator:
        return None
    types = {e.instance_type for e in run_log.finished_entries() if e.instance_type}
    prices = spot_history(clients.ec2, types, run_log.started, run_log.ended or time.time())
    if not prices:
        return None
    return {
        "as_of": time.strftime("%Y-%m-%d", time.gmtime()),
        "source": "EC2 DescribeSpotPriceHistory",
        "prices": prices,
    }


def usage_warning(errors: list[StagingError]) -> str:
    """One warning for every usage document refused: the run record leaves their usage out."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"knot: the run record leaves out a job's usage{more}: {first}"


def _instance_types(
    run_log: RunLog, clients: Clients, config: KnotConfig, warn: Callable[[str], None]
) -> None:
    """For the record's costs; a refusal (an older runner policy) costs only precision."""
    if config.emulator:  # moto's jobs run on no instance
        classes = {c.name: c.instance_types for c in config.compute_classes}
        run_log.estimate_instance_types(classes, clients.region)
        return
    try:
        run_log.find_instance_types(clients.batch, clients.ecs)
    except KnotError as exc:
        warn(f"knot: {exc} The report estimates the instance types.")
