"""Scale (issue item 6): CPU time per job and peak memory of the Snakemake process with
knot, with every job of the fan-out in flight at once, at the fan-out size and at 10,000
jobs. Equal CPU per job at both sizes means the cost grows linearly in the number of jobs.
knot's own share is timed at its entry points (benchmarks.launch)."""

from __future__ import annotations

from .calls import DESCRIBE_TARGET, SUBMIT_TARGET, calls_per_cycle, per_job
from .config import Config
from .report import Row
from .runner import Bench, Run, run
from .workflows import fanout


def cpu_ms_per_job(run_: Run) -> float:
    return 1000 * run_.trace["cpu_s"] / run_.workflow.jobs


def knot_ms_per_job(run_: Run) -> float:
    return 1000 * sum(run_.trace["knot_cpu_s"].values()) / run_.workflow.jobs


def server_ms_per_job(run_: Run) -> float:
    return 1000 * run_.server_cpu_s / run_.workflow.jobs


def peak_mib(run_: Run) -> float:
    return run_.trace["peak_rss_kib"] / 1024


def in_flight(bench: Bench, jobs: int) -> Run:
    """Snakemake starts at most 100 jobs a second by default; lifting that hands knot every
    job at once (moto's Batch finishes each at SubmitJob)."""
    return run(bench, fanout(jobs), "knot", extra_args=("--max-jobs-per-timespan", f"{jobs}/1s"))


def scale_rows(bench: Bench, config: Config) -> list[Row]:
    small = in_flight(bench, config.fanout_jobs)
    large = in_flight(bench, config.scale_jobs)
    section = f"scale ({large.workflow.name})"
    name = f"knot, {small.workflow.jobs:,} jobs"
    busiest = max((c["active"] for c in large.trace["cycles"]), default=0)
    return [
        Row(section, "Snakemake process CPU per job (ms)", cpu_ms_per_job(large),
            cpu_ms_per_job(small), name),
        Row(section, "knot executor CPU per job (ms)", knot_ms_per_job(large),
            knot_ms_per_job(small), name, note="thread CPU inside knot's entry points"),
        Row(section, "emulator (moto server) CPU per job (ms)", server_ms_per_job(large),
            server_ms_per_job(small), name, note="moto lists a prefix by scanning the bucket"),
        Row(section, "Snakemake process peak memory, VmHWM (MiB)", peak_mib(large),
            peak_mib(small), name),
        Row(section, "most jobs in one status cycle", busiest),
        Row(section, "wall time (s)", large.wall_s, small.wall_s, name),
        Row(section, "SubmitJob per job", per_job(large, "batch.SubmitJob"),
            target=SUBMIT_TARGET),
        Row(section, "DescribeJobs per 100 active jobs, worst status cycle",
            calls_per_cycle(large, "batch.DescribeJobs"), target=DESCRIBE_TARGET),
        Row(section, "ListJobs per job", per_job(large, "batch.ListJobs")),
        Row(section, "all S3 requests per job", per_job(large, "s3")),
    ]  # fmt: skip
