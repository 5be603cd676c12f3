"""The run record, ``.snakemake/knot/run-<run_id>.json``: for every job, when the host handed
it over, submitted it and reported it, Batch's own times, attempts and reason, and what the
container measured (its usage document). ``knot report`` reads it (report/records.py holds the
schema and the checks).

The usage documents come from the jobs, so they are hostile input: only known fields of the
right type are kept.
"""

from __future__ import annotations

import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from .aws.status import JobState
from .groups import job_key, job_label
from .resources import BatchResources
from .runtime.contract import usage_key

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

    def as_dict(self) -> dict:
        state = self.state
        return {
            "jobid": self.jobid,
            "rule": self.rule,
            "batch_id": self.batch_id,
            "status": state.status if state else None,
            "attempts": state.attempts if state else None,
            "reason": state.reason if state else None,
            "requested": self.requested,
            "instance_type": None,
            "adopted": self.adopted,
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
    return {"vcpus": resources.vcpus, "memory_mib": resources.memory_mib, "gpus": resources.gpus}


class RunLog:
    """Collects the job entries of one run, from any thread."""

    def __init__(self, run_id: str, clock=time.time) -> None:
        self.run_id = run_id
        self.clock = clock
        self.started = clock()
        self.jobs: dict[int, JobEntry] = {}
        self._lock = threading.Lock()

    def handed_over(self, jobs) -> None:
        now = self.clock()
        with self._lock:
            for job in jobs:
                key = job_key(job)  # a group job: one entry, by its first member's jobid
                self.jobs[key] = JobEntry(key, job_label(job), now)

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

    def reported(self, jobid: int) -> None:
        with self._lock:
            self.jobs[jobid].reported = self.clock()

    def fetch_usage(self, s3) -> int:
        """GET every finished job's usage document, in parallel; returns how many were read."""
        wanted = [e for e in self.jobs.values() if e.usage_at and e.state and e.state.finished]
        with ThreadPoolExecutor(USAGE_FETCHERS) as pool:
            found = list(pool.map(lambda e: read_usage(s3, *e.usage_at), wanted))
        for entry, usage in zip(wanted, found, strict=True):
            entry.usage = usage
        return sum(1 for usage in found if usage)

    def as_dict(self, pricing: dict, calls: dict, images: dict) -> dict:
        return {
            "run_id": self.run_id,
            "started": self.started,
            "pricing": pricing,
            "calls": dict(sorted(calls.items())),
            "images": images,
            "jobs": [entry.as_dict() for _, entry in sorted(self.jobs.items())],
        }


def usage_location(bucket: str, spec_key: str, index: int) -> tuple[str, str]:
    return bucket, usage_key(spec_key, index)


def read_usage(s3, bucket: str, key: str) -> dict:
    """The checked usage document at ``s3://bucket/key``; {} when missing or unreadable (a
    job that died before its end sends none)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{MAX_USAGE_BYTES - 1}")
        data = json.loads(body["Body"].read())
    except (BotoCoreError, ClientError, ValueError):
        return {}
    return clean_usage(data)


def clean_usage(data: object) -> dict:
    """Only the known fields, as finite non-negative numbers (exit status: an integer)."""
    if not isinstance(data, dict):
        return {}
    usage = {}
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


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 1e18


def pricing(config, region: str | None) -> dict:
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
