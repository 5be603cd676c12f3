"""AWS calls per job, by operation, for knot and the aws-batch plugin (issue items 2, 3)."""

from __future__ import annotations

import math

from .report import Row, Target
from .runner import Run

PER_JOB = (
    "batch.SubmitJob",
    "batch.DescribeJobs",
    "batch.ListJobs",
    "batch.RegisterJobDefinition",
    "batch.DescribeJobDefinitions",
    "batch.TerminateJob",
    "batch.DeregisterJobDefinition",
    "batch",
    "s3.PutObject",
    "s3",
)
DESCRIBE_CHUNK = 100
STATUS_CALLS = ("batch.DescribeJobs", "batch.ListJobs")
SUBMIT_TARGET = Target("<=", 0.02, asserted=True)
DESCRIBE_TARGET = Target("<=", 1.0, asserted=True)
WARM_REGISTER_TARGET = Target("==", 0, asserted=True)


def per_job(run: Run, name: str) -> float:
    return run.count(name) / run.workflow.jobs


def cycle_windows(run: Run) -> list[tuple[float, float, int]]:
    """(start, end, active jobs) of each status cycle that had active jobs: to the cycle's
    recorded end, else (older traces) to the next cycle's start."""
    cycles = sorted(run.trace["cycles"], key=lambda c: c["time"])
    nexts = [c["time"] for c in cycles[1:]] + [math.inf]
    return [
        (c["time"], c.get("end", following), c["active"])
        for c, following in zip(cycles, nexts, strict=True)
    ]


def calls_per_cycle(run: Run, *names: str) -> float | None:
    """The worst status cycle's calls of ``names`` per started 100 active jobs."""
    times = [r.time for r in run.requests if f"{r.service}.{r.operation}" in names]
    worst = None
    for start, end, active in cycle_windows(run):
        calls = sum(1 for t in times if start <= t < end)
        per_hundred = calls / math.ceil(active / DESCRIBE_CHUNK)
        worst = per_hundred if worst is None else max(worst, per_hundred)
    return worst


def _label(name: str) -> str:
    if "." not in name:
        return f"all {'Batch' if name == 'batch' else 'S3'} requests per job"
    return f"{name.split('.', 1)[1]} per job"


def call_rows(section: str, knot: Run, plugin: Run | None, fanout: bool) -> list[Row]:
    """knot against the aws-batch plugin on one workflow."""
    rows = []
    for name in PER_JOB:
        target = SUBMIT_TARGET if fanout and name == "batch.SubmitJob" else None
        other = per_job(plugin, name) if plugin else None
        rows.append(Row(section, _label(name), per_job(knot, name), other, "aws-batch", target))
    rows.append(
        Row(
            section,
            "DescribeJobs per 100 active jobs, worst status cycle",
            calls_per_cycle(knot, "batch.DescribeJobs"),
            calls_per_cycle(plugin, "batch.DescribeJobs") if plugin else None,
            "aws-batch",
            DESCRIBE_TARGET,
        )
    )
    rows.append(
        Row(
            section,
            "status calls (DescribeJobs+ListJobs) per 100 active jobs, worst cycle",
            calls_per_cycle(knot, *STATUS_CALLS),
            calls_per_cycle(plugin, *STATUS_CALLS) if plugin else None,
            "aws-batch",
        )
    )
    rows.append(Row(section, "status cycles with active jobs", len(knot.trace["cycles"]),
                    len(plugin.trace["cycles"]) if plugin else None, "aws-batch"))  # fmt: skip
    return rows


def warm_rows(cold: Run, warm: Run) -> list[Row]:
    """What a second, unchanged run no longer does."""
    section = f"warm run ({warm.workflow.name})"
    return [
        Row(section, "RegisterJobDefinition calls, first run",
            cold.count("batch.RegisterJobDefinition")),
        Row(section, "RegisterJobDefinition calls, second run",
            warm.count("batch.RegisterJobDefinition"), target=WARM_REGISTER_TARGET),
        Row(section, "CloudFormation calls, first run", cold.count("cloudformation")),
        Row(section, "CloudFormation calls, second run", warm.count("cloudformation")),
    ]  # fmt: skip
