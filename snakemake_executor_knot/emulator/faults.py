"""Faults the emulator injects on request, so that tests can show knot survives them.

``knot emulator faults`` writes the switches to ``faults.json`` in the emulator's state
folder; the serve process reads them (at most once a second) and answers some requests
with the errors AWS gives under load:

- ``s3_error_share``: that share of S3 requests fails with ``s3_error_status`` (500
  InternalError or 503 SlowDown), which botocore retries;
- ``throttle``: the next N calls of an operation ("batch.SubmitJob", "batch.DescribeJobs")
  are refused with TooManyRequestsException;
- ``kill``: the containers of the next N jobs whose name matches a glob are killed
  (SIGKILL, exit code 137) once they have run ``strike_after`` seconds;
- ``reclaim``: the next N such containers end as a spot reclaim does: the host goes, the
  attempt ends with "Host EC2 (instance i-...) terminated." and no exit code, and the job
  definition's retryStrategy decides whether Batch tries again (``retries``).

What was injected is counted in ``faults-injected.json`` next to it, so a test can tell
that its faults really happened. This module decides; ``patches`` puts it in front of moto.
"""

from __future__ import annotations

import fnmatch
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FAULTS_FILE = "faults.json"
INJECTED_FILE = "faults-injected.json"
S3_ERRORS = {500: "InternalError", 503: "SlowDown"}
_SCOPE = re.compile(r"Credential=[^/]*/[^/]*/[^/]*/([a-z0-9-]+)/aws4_request")
_RELOAD_SECONDS = 1.0
# Kinds of job faults, as counted in faults-injected.json.
KILL, RECLAIM = "job.kill", "job.reclaim"
_JOB_GLOB = re.compile(r"[A-Za-z0-9_*?\[\]-]+")
# Batch's REST paths (/v1/<action>) and the operations they are.
_BATCH_OPERATIONS = {
    "submitjob": "SubmitJob",
    "describejobs": "DescribeJobs",
    "listjobs": "ListJobs",
}


@dataclass(frozen=True)
class Switches:
    """The faults asked for; all off by default."""

    s3_error_share: float = 0.0
    s3_error_status: int = 503
    throttle: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    kill: dict[str, int] = field(default_factory=dict)  # job name glob -> containers
    reclaim: dict[str, int] = field(default_factory=dict)
    strike_after: float = 2.0  # seconds a struck container runs first

    def __post_init__(self) -> None:
        if not 0.0 <= self.s3_error_share <= 1.0:
            raise ValueError(f"s3_error_share must be between 0 and 1, not {self.s3_error_share}")
        if self.s3_error_status not in S3_ERRORS:
            raise ValueError(f"s3_error_status must be one of {sorted(S3_ERRORS)}")
        for operation, count in self.throttle.items():
            if not re.fullmatch(r"[a-z0-9]+\.[A-Za-z]+", operation) or count < 0:
                raise ValueError(f"throttle wants 'service.Operation': N >= 0, not {operation}")
        for name, globs in (("kill", self.kill), ("reclaim", self.reclaim)):
            for glob, count in globs.items():
                if not _JOB_GLOB.fullmatch(glob) or count < 0:
                    raise ValueError(f"{name} wants 'job-name-glob': N >= 0, not {glob}")
        if not 0.0 <= self.strike_after <= 3600.0:
            raise ValueError(f"strike_after must be 0-3600 seconds, not {self.strike_after}")


def read_switches(path: Path) -> Switches:
    """The switches in ``path``; all off when there is no such file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Switches()
    return Switches(
        s3_error_share=float(data.get("s3_error_share", 0.0)),
        s3_error_status=int(data.get("s3_error_status", 503)),
        throttle=_counts(data.get("throttle")),
        seed=data.get("seed"),
        kill=_counts(data.get("kill")),
        reclaim=_counts(data.get("reclaim")),
        strike_after=float(data.get("strike_after", 2.0)),
    )


def _counts(found: object) -> dict[str, int]:
    return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}


def write_switches(folder: Path, switches: Switches) -> None:
    """Hand new switches to the running emulator (it notices within a second)."""
    data = {
        "s3_error_share": switches.s3_error_share,
        "s3_error_status": switches.s3_error_status,
        "throttle": switches.throttle,
        "seed": switches.seed,
        "kill": switches.kill,
        "reclaim": switches.reclaim,
        "strike_after": switches.strike_after,
    }
    tmp = folder / f"{FAULTS_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(folder / FAULTS_FILE)


def read_injected(folder: Path) -> dict[str, int]:
    """How many requests of each operation failed on purpose since the switches changed."""
    try:
        return json.loads((folder / INJECTED_FILE).read_text())
    except FileNotFoundError:
        return {}


def request_operation(environ: dict) -> str | None:
    """ "service.Operation" of a WSGI request to moto, as far as faults need it: S3 by its
    signature's scope and HTTP method, Batch by its REST path (``/v1/submitjob``)."""
    found = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not found:
        return None
    service = found.group(1)
    if service == "s3":
        return f"s3.{environ.get('REQUEST_METHOD', 'GET')}"
    if service == "batch":
        action = environ.get("PATH_INFO", "").rstrip("/").rpartition("/")[2]
        return f"batch.{_BATCH_OPERATIONS.get(action, action)}"
    return service


class Injector:
    """Decides, request by request, whether to fail it. Thread safe: moto's server
    answers requests on many threads."""

    def __init__(self, folder: Path, reload_seconds: float = _RELOAD_SECONDS) -> None:
        self.folder = folder
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._switches = Switches()
        self._stamp: float | None = None
        self._checked = 0.0
        self._left: Counter[str] = Counter()
        self._strikes: dict[str, Counter[str]] = {KILL: Counter(), RECLAIM: Counter()}
        self._random = random.Random()
        self.injected: Counter[str] = Counter()

    def fault_for(self, operation: str | None) -> tuple[int, str] | None:
        """(HTTP status, AWS error code) to answer with, or None to let moto answer."""
        if operation is None:
            return None
        with self._lock:
            self._reload()
            fault = self._decide(operation)
            if fault:
                self.injected[operation] += 1
                self._write_injected()
            return fault

    def job_fault(self, job_name: str) -> tuple[str, float] | None:
        """(KILL or RECLAIM, seconds to wait) for a job container about to start, or None.
        Each match uses up one of its glob's count; reclaims are looked at first."""
        with self._lock:
            self._reload()
            for kind in (RECLAIM, KILL):
                for glob, left in self._strikes[kind].items():
                    if left > 0 and fnmatch.fnmatchcase(job_name, glob):
                        self._strikes[kind][glob] -= 1
                        return kind, self._switches.strike_after
            return None

    def struck(self, kind: str) -> None:
        """Count a job fault that really happened (its container was still running)."""
        with self._lock:
            self.injected[kind] += 1
            self._write_injected()

    def _decide(self, operation: str) -> tuple[int, str] | None:
        if self._left[operation] > 0:
            self._left[operation] -= 1
            return 429, "TooManyRequestsException"
        share = self._switches.s3_error_share
        if operation.startswith("s3.") and share and self._random.random() < share:
            status = self._switches.s3_error_status
            return status, S3_ERRORS[status]
        return None

    def _reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.reload_seconds:
            return
        self._checked = now
        path = self.folder / FAULTS_FILE
        stamp = path.stat().st_mtime if path.exists() else None
        if stamp != self._stamp:  # new switches: counts start again
            self._stamp = stamp
            self._switches = read_switches(path)
            self._left = Counter(self._switches.throttle)
            self._strikes = {
                KILL: Counter(self._switches.kill),
                RECLAIM: Counter(self._switches.reclaim),
            }
            self._random.seed(self._switches.seed)
            self.injected.clear()
            self._write_injected()

    def _write_injected(self) -> None:
        tmp = self.folder / f"{INJECTED_FILE}.tmp"
        tmp.write_text(json.dumps(dict(self.injected), sort_keys=True) + "\n")
        tmp.replace(self.folder / INJECTED_FILE)


def error_body(operation: str, status: int, code: str) -> tuple[bytes, str]:
    """The response body AWS sends with that error, and its content type: XML for S3,
    JSON for the JSON and REST-JSON services."""
    message = f"{code} (a fault the knot emulator was asked to inject)"
    if operation.startswith("s3."):
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        return (body + f"<Message>{message}</Message></Error>").encode(), "application/xml"
    return json.dumps({"__type": code, "message": message}).encode(), "application/json"
