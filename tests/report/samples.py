"""Synthetic run records for the report tests, as the executor writes them (plain dicts)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

STARTED = 1764421200.0
RUN_ID = "20261129T130000-ab12cd34"


def job(jobid: int = 3, rule: str = "fit", **changes: object) -> dict:
    """A complete job record; ``changes`` replace whole top-level fields."""
    t = STARTED
    record = {
        "jobid": jobid,
        "rule": rule,
        "batch_id": f"abc:{jobid}",
        "status": "SUCCEEDED",
        "attempts": 1,
        "reason": None,
        "requested": {"vcpus": 2, "memory_mib": 8192, "gpus": 0},
        "instance_type": None,
        "host": {"handed_over": t + 1.0, "submitted": t + 2.0, "reported": t + 30.0},
        "batch": {"created": t + 2.1, "started": t + 10.0, "stopped": t + 29.0},
        "usage": {
            "start": t + 11.0,
            "end": t + 28.5,
            "wall_s": 17.5,
            "cpu_s": 30.1,
            "peak_rss_mb": 950.0,
            "stage_in_s": 1.2,
            "stage_in_bytes": 1048576,
            "run_s": 15.0,
            "stage_out_s": 1.3,
            "stage_out_bytes": 2048,
            "exit_status": 0,
        },
    }
    record.update(copy.deepcopy(changes))
    return record


def run(jobs: list[dict], **changes: object) -> dict:
    """A run record holding ``jobs``."""
    record = {
        "run_id": RUN_ID,
        "started": STARTED,
        "calls": {"batch.SubmitJob": len(jobs)},
        "images": {"built": 1, "pushed": 1, "skipped": 0},
        "pricing": {
            "region": "us-east-1",
            "market": "spot",
            "emulator": True,
            "instance_types": ["optimal"],
        },
        "jobs": jobs,
    }
    record.update(changes)
    return record


def timed(start: float, stop: float) -> dict:
    """Batch times from ``start`` to ``stop`` seconds after the run's start."""
    return {"created": STARTED + start, "started": STARTED + start, "stopped": STARTED + stop}


def three_rules() -> dict:
    """prep (two jobs), fit (one job, failed after a retry) and plot (a known instance type,
    no usage), priced on demand."""
    prep_usage = {"wall_s": 3000.0, "cpu_s": 1500.0, "peak_rss_mb": 1000.0}
    small = {"vcpus": 1, "memory_mib": 2048, "gpus": 0}
    jobs = [
        job(1, "prep", requested=small, batch=timed(0, 3600), usage=prep_usage),
        job(
            2,
            "prep",
            requested=small,
            batch=timed(0, 3600),
            usage={**prep_usage, "peak_rss_mb": 1500.0},
        ),
        job(
            3,
            "fit",
            status="FAILED",
            attempts=2,
            reason="Essential container in task exited",
            batch=timed(3600, 5400),
            usage={"wall_s": 1700.0, "cpu_s": 3400.0, "peak_rss_mb": 3000.0},
        ),
        job(
            4,
            "plot",
            requested={"vcpus": 1, "memory_mib": 4096},
            instance_type="r5.large",
            batch=timed(5400, 7200),
            usage=None,
        ),
    ]
    pricing = {"region": "us-east-1", "market": "on-demand", "instance_types": ["optimal"]}
    return run(jobs, pricing=pricing)


def write(directory: Path, record: dict, run_id: str | None = None) -> Path:
    """Write ``record`` as ``run-<run_id>.json`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"run-{run_id or record['run_id']}.json"
    path.write_text(json.dumps(record))
    return path


# The keys issue 12 asks every row of the per-rule table to carry.
REQUIRED = {
    "rule",
    "jobs",
    "wall_s",
    "cpu_s",
    "peak_rss_mb",
    "requested_mem_mb",
    "suggested_mem_mb",
    "requested_threads",
    "suggested_threads",
    "failures",
    "retries",
    "cost_usd",
    "cost_usd_if_resized",
    "vcpu_usage",
    "mem_usage",
}
