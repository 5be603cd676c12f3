"""What earlier runs measured, per rule: every ``.snakemake/knot/run-*.json`` read as hostile
input (``report.records`` checks each field). A record that does not parse is skipped and
named; it never stops a plan."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..report.pricing import billed_seconds
from ..report.records import RUN_DIR, JobRecord, RunRecord, load_run


@dataclass(frozen=True)
class Sample:
    """One finished job of an earlier run: what it held an instance for, what the host waited
    for it, its input and output bytes, and what it asked for and used."""

    run_id: str
    rule: str
    seconds: float
    latency_s: float | None = None  # handed over to reported, seen by the host
    input_bytes: float | None = None
    output_bytes: float | None = None
    vcpus: float | None = None
    memory_mib: float | None = None
    peak_rss_mb: float | None = None


@dataclass(frozen=True)
class RunTimes:
    """A whole run's overheads around its jobs: from the process's start to the first job
    handed over, and from the last job reported to the run's end."""

    run_id: str
    startup_s: float
    closing_s: float


@dataclass
class History:
    """Samples by rule, the runs' overheads, and the records skipped (path, why)."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    runs: list[RunTimes] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def of(self, rule: str) -> list[Sample]:
        return self.samples.get(rule, [])

    def startup_s(self) -> float:
        """The median start-up of the recorded runs (0 without any)."""
        return statistics.median(r.startup_s for r in self.runs) if self.runs else 0.0

    def closing_s(self) -> float:
        return statistics.median(r.closing_s for r in self.runs) if self.runs else 0.0


def load_history(directory: Path = RUN_DIR) -> History:
    """Every run record in ``directory``, oldest first; a damaged one is skipped and named."""
    history = History()
    paths = sorted(Path(directory).glob("run-*.json")) if Path(directory).is_dir() else []
    for path in paths:
        try:
            run = load_run(path)
        except ConfigError as exc:
            history.skipped.append((str(path), str(exc)))
            continue
        add_run(history, run)
    return history


def add_run(history: History, run: RunRecord) -> None:
    """The run's finished jobs as samples, and its overheads."""
    for job in run.jobs:
        sample = job_sample(run.run_id, job)
        if sample is not None:
            history.samples.setdefault(sample.rule, []).append(sample)
    times = run_times(run)
    if times is not None:
        history.runs.append(times)


def job_sample(run_id: str, job: JobRecord) -> Sample | None:
    """A succeeded job as a sample; None for a failed, unfinished or unmeasured one (a
    failure's time says nothing about how long the rule takes)."""
    if job.status != "SUCCEEDED" or (job.usage.exit_status or 0) != 0:
        return None
    seconds = billed_seconds(job)
    if seconds is None:
        return None
    host = job.host
    latency = None
    if host.handed_over is not None and host.reported is not None:
        latency = max(host.reported - host.handed_over, 0.0)
    return Sample(
        run_id=run_id,
        rule=job.rule,
        seconds=seconds,
        latency_s=latency,
        input_bytes=job.usage.stage_in_bytes,
        output_bytes=job.usage.stage_out_bytes,
        vcpus=job.requested.vcpus,
        memory_mib=job.requested.memory_mib,
        peak_rss_mb=job.usage.peak_rss_mb,
    )


def run_times(run: RunRecord) -> RunTimes | None:
    """The run's start-up and closing, when its record holds the times for them."""
    start = run.process_started if run.process_started is not None else run.started
    handed = _known(job.host.handed_over for job in run.jobs)
    reported = _known(job.host.reported for job in run.jobs)
    if start is None or run.ended is None or not handed or not reported:
        return None
    startup = max(min(handed) - start, 0.0)
    closing = max(run.ended - max(reported), 0.0)
    return RunTimes(run.run_id, startup, closing)


def _known(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]
