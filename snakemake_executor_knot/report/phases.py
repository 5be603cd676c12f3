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

# A job's bar, hand-over to report. Each phase begins where the one before ends, so a bar
# has a gap only where the record lacks a time (a job that failed before its container
# reported, a record from an older knot).
PHASES = (
    "submission",  # host: spec, uploads, SubmitJob
    "queued in Batch",  # SubmitJob (or createdAt) to startedAt
    "container start",  # startedAt to the runtime's first measurement
    "staging in",
    "running",
    "staging out",
    "finishing",  # the runtime's checks and usage upload, Batch noticing the exit
    "status polling",  # stoppedAt to the status check that saw it
    "reporting",  # that check to the report to Snakemake
)
# The host's work before the first job: its own rows at the top of the timeline.
HOST_PHASES = ("preparation", "image build", "image push")


class Segment(NamedTuple):
    """One phase of one job, in epoch seconds."""

    phase: str
    start: float
    end: float


def job_segments(job: JobRecord) -> list[Segment]:
    """The job's phases in PHASES order; a phase with an unknown start or end is left out."""
    host, batch = job.host, job.batch
    queued_from = host.submitted if host.submitted is not None else batch.created
    container = _container_segments(job)
    container_end = container[-1].end if len(container) == 3 else None
    polled = host.seen_finished
    segments = [
        _segment("submission", host.handed_over, host.submitted),
        _segment("queued in Batch", queued_from, batch.started),
        _segment("container start", batch.started, job.usage.start),
        *container,
        _segment("finishing", container_end, batch.stopped),
        _segment("status polling", batch.stopped, polled),
        _segment("reporting", polled if polled is not None else batch.stopped, host.reported),
    ]
    return [s for s in segments if s is not None]


def host_rows(run: RunRecord) -> list[tuple[str, list[Segment]]]:
    """The host's rows before the first job: rule plans and the stack check, then one row
    per image built (build, then push). Images found in ECR took no time and have none."""
    steps = {name: (start, end) for name, start, end in run.steps}
    prep = [Segment("preparation", *steps[n]) for n in ("rule plans", "stack check") if n in steps]
    rows = [("rule plans, stack", prep)] if prep else []
    for image in run.image_builds:
        if image.outcome != "built":
            continue
        spans = (("image build", image.build), ("image push", image.push))
        segments = [Segment(name, *span) for name, span in spans if span is not None]
        rows.append(("image " + ", ".join(image.rules), segments))
    return rows


def wall_time(run: RunRecord) -> float | None:
    """The run's wall time: the process's start (else knot's) to the record's end."""
    start = run.process_started if run.process_started is not None else run.started
    if start is None or run.ended is None:
        return None
    return max(run.ended - start, 0.0)


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
