"""What a job used, measured with the standard library and sent home as one small JSON
document next to its spec (``contract.usage_key``): wall and CPU time of the rule's code,
peak RSS, bytes and seconds staged in and out, and the exit status.

Peak RSS comes from getrusage: ``ru_maxrss`` of this process (run blocks execute here) and of
its waited-for children. Linux reports the children's value as the peak of the largest single
child, not the sum of children alive at once, so a shell rule that runs two big programs in
parallel is under-counted.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from . import benchmark
from .contract import USAGE_VERSION, usage_key
from .spec import SpecLocation, parse_s3_uri

_MIB = 1024 * 1024


@dataclass
class Phase:
    """Seconds and bytes of one staging direction."""

    seconds: float = 0.0
    bytes: int = 0


@dataclass
class Meter:
    """Collects the job's measurements as it goes; ``document()`` is what goes home."""

    start: float = field(default_factory=time.time)
    stage_in: Phase = field(default_factory=Phase)
    stage_out: Phase = field(default_factory=Phase)
    before: benchmark.Usage | None = None
    after: benchmark.Usage | None = None
    exit_status: int | None = None
    members: list | None = None  # a group job's: each member's rule, jobid, run_s, cpu_s

    def rule_started(self) -> benchmark.Usage:
        self.before = benchmark.Usage.now()
        return self.before

    def rule_ended(self) -> benchmark.Usage:
        self.after = benchmark.Usage.now()
        return self.after

    def document(self, end: float | None = None) -> dict:
        run = cpu = None
        if self.before is not None and self.after is not None:
            run = self.after.wall - self.before.wall
            cpu = self.after.cpu - self.before.cpu
        last = self.after or benchmark.Usage.now()
        peak = last.max_rss_kib / 1024
        return {
            "version": USAGE_VERSION,
            "start": self.start,
            "end": time.time() if end is None else end,
            "wall_s": run,
            "cpu_s": cpu,
            "peak_rss_mb": peak,
            "stage_in_s": self.stage_in.seconds,
            "stage_in_bytes": self.stage_in.bytes,
            "run_s": run,
            "stage_out_s": self.stage_out.seconds,
            "stage_out_bytes": self.stage_out.bytes,
            "exit_status": self.exit_status,
        } | ({"members": self.members} if self.members is not None else {})


def send(s3, location: SpecLocation, index: str, document: dict) -> str | None:
    """One PUT of the document; returns its URI, or None after a warning on stderr. Usage is
    a courtesy: failing to send it never fails the job."""
    bucket, key = parse_s3_uri(location.uri)
    target = usage_key(key, index)
    body = json.dumps(document, separators=(",", ":")).encode()
    try:
        s3.put_object(Bucket=bucket, Key=target, Body=body, ContentType="application/json")
    except (BotoCoreError, ClientError) as exc:
        print(f"knot: could not send usage to s3://{bucket}/{target}: {exc}", file=sys.stderr)
        return None
    return f"s3://{bucket}/{target}"


def timed(phase: Phase, transfers: list, action) -> None:
    """Run ``action(transfers)`` and add its seconds and the files' sizes to ``phase``."""
    started = time.monotonic()
    try:
        action(transfers)
    finally:
        phase.seconds += time.monotonic() - started
        phase.bytes += sum(_size(t.path) for t in transfers)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
