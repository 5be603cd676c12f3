"""Where each job's time went: its timeline as phases, from the host's hand-over to the
host's report (pure).

The times come from three clocks (the host, AWS Batch and the container), which can disagree
by a little, so a phase that comes out negative is clamped to zero rather than drawn backwards.
"""

from __future__ import annotations

from collections import defaultdict
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


# Where a run's wall time goes, along its critical path, and whose each part is.
CRITICAL_SPANS = {
    "Snakemake start-up": "Snakemake (process start to knot's executor)",
    "knot start-up": "knot (settings, clients, rule plans)",
    "rule plans": "knot (rule sources, requirements, image tags)",
    "stack check": "knot (CloudFormation calls)",
    "images": "knot (Docker builds and pushes)",
    "Snakemake scheduling": "Snakemake (between a report and the next hand-over)",
    "submission": "knot (specs, uploads, SubmitJob)",
    "Batch queueing": "Batch (SubmitJob to startedAt)",
    "container start": "Batch, Docker and knot's runtime start-up",
    "staging in": "knot's runtime (S3)",
    "rule": "the rule itself",
    "runtime checks": "knot's runtime (spec, output checks, usage)",
    "staging out": "knot's runtime (S3)",
    "Batch noticing the end": "Batch (container exit to stoppedAt)",
    "status polling": "knot's status cadence (stoppedAt to the check that saw it)",
    "reporting": "knot (output checks, reporting to Snakemake)",
    "Snakemake shut-down": "Snakemake and knot (last report to exit)",
}


def critical_chain(run: RunRecord) -> list[JobRecord]:
    """The chain of reported jobs that ends last: from the last report back, each step the
    job reported last before the next one was handed over (the one that released it)."""
    # (job, reported, handed over) of the jobs that have both times
    done = [
        (j, reported, handed_over)
        for j in run.jobs
        if (reported := j.host.reported) is not None
        and (handed_over := j.host.handed_over) is not None
    ]
    chain = [max(done, key=lambda d: d[1])] if done else []
    while chain:
        head = chain[-1][2]
        before = [d for d in done if d[1] <= head]
        if not before:
            break
        chain.append(max(before, key=lambda d: d[1]))
    return [j for j, _, _ in chain[::-1]]


def job_spans(job: JobRecord) -> list[tuple[str, float | None, float | None]]:
    """One job's part of the critical path, hand-over to report, as (span, start, end)."""
    host, batch, usage = job.host, job.batch, job.usage
    spans = [
        ("submission", host.handed_over, host.submitted),
        ("Batch queueing", host.submitted, batch.started),
        ("container start", batch.started, usage.start),
    ]
    cursor = usage.start
    for name, seconds in (
        ("staging in", usage.stage_in_s),
        ("rule", usage.run_s),
        ("staging out", usage.stage_out_s),
    ):
        end = None if cursor is None or seconds is None else cursor + seconds
        spans.append((name, cursor, end))
        cursor = end
    if cursor is not None and usage.end is not None:
        spans.append(("runtime checks", cursor, usage.end))
    return spans + [
        ("Batch noticing the end", usage.end, batch.stopped),
        ("status polling", batch.stopped, host.seen_finished),
        ("reporting", host.seen_finished, host.reported),
    ]


def where_time_went(
    run: RunRecord, launched: float | None = None, exited: float | None = None
) -> list[tuple[str, float, str]]:
    """(span, seconds, whose) along the run's critical path, from ``launched`` (else the
    process's recorded start) to ``exited`` (else the record's end), in CRITICAL_SPANS
    order. A span with an unknown end is left out, so the sum may fall short of the wall
    time; where all is known it is the wall time."""
    spent: dict[str, float] = defaultdict(float)

    def add(name: str, start: float | None, end: float | None) -> None:
        if start is not None and end is not None:
            spent[name] += max(end - start, 0.0)

    origin = launched or run.process_started
    add("Snakemake start-up", origin, run.started)
    cursor = _preparation(run, add)
    for job in critical_chain(run):
        add("Snakemake scheduling", cursor, job.host.handed_over)
        for name, start, end in job_spans(job):
            add(name, start, end)
        cursor = job.host.reported
    add("Snakemake shut-down", cursor, exited or run.ended)
    return [(name, spent[name], whose) for name, whose in CRITICAL_SPANS.items() if name in spent]


def _preparation(run: RunRecord, add) -> float | None:
    """Adds the host's steps before the first submission; returns when they ended."""
    steps = {name: (start, end) for name, start, end in run.steps}
    if "preparation" not in steps:
        return run.started
    start, end = steps["preparation"]
    inner = 0.0
    for name in ("rule plans", "stack check", "images"):
        if name in steps:
            add(name, *steps[name])
            inner += max(steps[name][1] - steps[name][0], 0.0)
    add("knot start-up", run.started, end - inner if run.started is not None else None)
    return end
