"""Where each job's time went: its timeline as phases, from the host's hand-over to the
host's report (pure).

The times come from three clocks (the host, AWS Batch and the container), which can disagree
by a little, so a phase that comes out negative is clamped to zero rather than drawn backwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .records import JobRecord, RunRecord

PHASES = (
    "waiting on host",
    "queued in Batch",
    "starting",
    "staging in",
    "running",
    "staging out",
    "reporting",
)


class Segment(NamedTuple):
    """One phase of one job, in epoch seconds."""

    phase: str
    start: float
    end: float


def job_segments(job: JobRecord) -> list[Segment]:
    """The job's phases in PHASES order; a phase with an unknown end is left out."""
    host, batch, usage = job.host, job.batch, job.usage
    queued_from = host.submitted if host.submitted is not None else batch.created
    segments = [
        _segment("waiting on host", host.handed_over, host.submitted),
        _segment("queued in Batch", queued_from, batch.started),
        _segment("starting", batch.started, usage.start),
        *_container_segments(job),
        _segment("reporting", batch.stopped, host.reported),
    ]
    return [s for s in segments if s is not None]


def run_origin(run: RunRecord) -> float:
    """Time zero of the run's timeline: its recorded start, else the earliest known time."""
    if run.started is not None:
        return run.started
    times = [s.start for job in run.jobs for s in job_segments(job)]
    return min(times, default=0.0)


def relative(segments: Iterable[Segment], origin: float) -> list[Segment]:
    """The segments in seconds from ``origin`` (the run's start)."""
    return [Segment(s.phase, s.start - origin, s.end - origin) for s in segments]


def _container_segments(job: JobRecord) -> list[Segment]:
    """Staging in, running and staging out, laid end to end from the container's start.

    The container reports durations, not times; once one is missing, where the next phase
    starts is unknown, so it and the rest are left out.
    """
    usage = job.usage
    durations = (
        ("staging in", usage.stage_in_s),
        ("running", usage.run_s),
        ("staging out", usage.stage_out_s),
    )
    cursor = usage.start
    segments = []
    for phase, seconds in durations:
        if cursor is None or seconds is None:
            break
        segment = Segment(phase, cursor, cursor + max(seconds, 0.0))
        segments.append(segment)
        cursor = segment.end
    return segments


def _segment(phase: str, start: float | None, end: float | None) -> Segment | None:
    if start is None or end is None:
        return None
    return Segment(phase, start, max(start, end))
