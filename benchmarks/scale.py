"""Scale (issue item 6): the Snakemake process's CPU time per job and peak memory with knot,
at the fan-out size and at 10,000 jobs in flight. Equal CPU per job at both sizes means
the cost grows linearly; a profiled run shows where knot's own share goes."""

from __future__ import annotations

import pstats
from pathlib import Path

from .calls import DESCRIBE_TARGET, SUBMIT_TARGET, calls_per_cycle, per_job
from .config import Config
from .report import Row
from .runner import Bench, Run, run
from .workflows import fanout

# Snakemake's entry points into an executor plugin: everything knot does happens below them.
ENTRY_POINTS = ("__post_init__", "run_jobs", "check_active_jobs", "shutdown")
PACKAGE = "snakemake_executor_knot"


def cpu_ms_per_job(run_: Run) -> float:
    return 1000 * run_.trace["cpu_s"] / run_.workflow.jobs


def peak_mib(run_: Run) -> float:
    return run_.trace["peak_rss_kib"] / 1024


def executor_cpu_s(profile: Path) -> float:
    """CPU seconds inside knot's executor (cumulative, callees included: boto3 and
    Snakemake's reporting calls made on knot's behalf), from a thread-CPU profile."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.items():
        if filename.endswith(f"{PACKAGE}/executor.py") and name in ENTRY_POINTS:
            total += cumulative
    return total


def profiled_run(bench: Bench, jobs: int) -> tuple[Run, float]:
    profile = bench.root / f"profile-{jobs}.pstats"
    result = run(bench, fanout(jobs), "knot", extra_env={"KNOT_BENCH_PROFILE": str(profile)})
    return result, executor_cpu_s(profile)


def scale_rows(bench: Bench, config: Config, small: Run | None = None) -> list[Row]:
    """``small``: a knot run of the fan-out at its usual size, if one was made already."""
    small = small or run(bench, fanout(config.fanout_jobs), "knot")
    # Snakemake starts at most 100 jobs a second by default; lifting that puts all
    # 10,000 in flight at once (moto's Batch finishes each at SubmitJob).
    in_flight = ("--max-jobs-per-timespan", f"{config.scale_jobs}/1s")
    large = run(bench, fanout(config.scale_jobs), "knot", extra_args=in_flight)
    # Profiling slows Snakemake about threefold, so it runs at the fan-out size.
    profiled, knot_cpu = profiled_run(bench, config.fanout_jobs)
    section = f"scale ({large.workflow.name})"
    name = f"knot, {small.workflow.jobs:,} jobs"
    per_job_ms = 1000 / profiled.workflow.jobs
    return [
        Row(section, "Snakemake process CPU per job (ms)", cpu_ms_per_job(large),
            cpu_ms_per_job(small), name),
        Row(section, f"knot executor CPU per job, profiled, {profiled.workflow.jobs:,} jobs (ms)",
            knot_cpu * per_job_ms, profiled.trace["cpu_s"] * per_job_ms,
            "whole process, profiled", note="cProfile on every thread, thread CPU clock"),
        Row(section, "most jobs in one status cycle", max(
            (c["active"] for c in large.trace["cycles"]), default=0)),
        Row(section, "Snakemake process peak memory, VmHWM (MiB)", peak_mib(large),
            peak_mib(small), name),
        Row(section, "wall time (s)", large.wall_s, small.wall_s, name),
        Row(section, "SubmitJob per job", per_job(large, "batch.SubmitJob"),
            target=SUBMIT_TARGET),
        Row(section, "DescribeJobs per 100 active jobs, worst status cycle",
            calls_per_cycle(large, "batch.DescribeJobs"), target=DESCRIBE_TARGET),
        Row(section, "ListJobs per job", per_job(large, "batch.ListJobs")),
        Row(section, "all S3 requests per job", per_job(large, "s3")),
    ]  # fmt: skip
