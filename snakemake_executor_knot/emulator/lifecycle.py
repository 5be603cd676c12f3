"""A Batch job's attempts in moto: how an attempt ends, whether another one starts, and
the job faults (`knot emulator faults --kill/--reclaim`) that end one early.

moto runs a whole job in ``Job.run`` (one thread per job) and never retries. Here an
attempt that fails is looked at first: its status reason, exit code and stop time go on
the attempt (as DescribeJobs shows them on AWS), and when the job definition's
retryStrategy says so (``retries``), ``Job.run`` runs again for a new attempt of the same
job id while the job stays active. Used inside the emulator's serve process only.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import docker
import requests
from moto.batch.models import Job, datetime2int_milliseconds

from .faults import RECLAIM, Injector
from .retries import new_instance_id, reclaim_reason, should_retry

log = logging.getLogger("knot.emulator.lifecycle")

# AWS's statusReason for a job whose container exited non-zero.
NONZERO_EXIT_REASON = "Essential container in task exited"
# Attributes this module keeps on moto's Job objects.
_RETRYING = "_knot_retrying"  # the attempt failed and another one will start
_RECLAIMED = "_knot_reclaimed"  # the status reason of a reclaimed attempt


def patch_attempts() -> None:
    """Give moto's jobs AWS's attempt outcome and retries (idempotent per process)."""
    if getattr(Job, "_knot_attempts", False):
        return
    inner_stop = Job._mark_stopped
    inner_run = Job.run

    # Named ``self``, as in the methods they replace.
    def mark_stopped(self: Job, success: bool = True) -> None:
        # moto calls this more than once per attempt (failure, then success): only the
        # first call of an attempt counts.
        if self.job_stopped or getattr(self, _RETRYING, False):
            return
        _end_attempt(self, success)
        if not success and _retry_wanted(self):
            setattr(self, _RETRYING, True)
            log.info("job %s: attempt %d failed; retrying", self.job_id, len(self.attempts))
            return
        inner_stop(self, success)

    def run(self: Job) -> None:
        inner_run(self)
        while getattr(self, _RETRYING, False):
            _next_attempt(self)
            inner_run(self)

    # Replacing moto's methods is the point here, which mypy's method-assign forbids.
    Job._mark_stopped = mark_stopped  # type: ignore[method-assign]
    Job.run = run  # type: ignore[method-assign]
    Job._knot_attempts = True  # type: ignore[attr-defined]


def _end_attempt(job: Job, success: bool) -> None:
    """Record how the current attempt ended. A reclaim counts only if the container did
    not succeed first."""
    reclaimed = getattr(job, _RECLAIMED, None)
    if reclaimed and not success:
        # The host went away: Batch reports it, and the container has no exit code.
        job.job_stopped_reason, job.exit_code = reclaimed, None
    elif not success and job.job_stopped_reason is None and job.exit_code:
        job.job_stopped_reason = NONZERO_EXIT_REASON
    attempt = job.latest_attempt
    if attempt is not None:
        attempt["stoppedAt"] = datetime2int_milliseconds(datetime.now())
        if job.job_stopped_reason:
            attempt["statusReason"] = job.job_stopped_reason
        if job.exit_code is not None:
            attempt["container"]["exitCode"] = job.exit_code


def _retry_wanted(job: Job) -> bool:
    # TerminateJob or CancelJob, or a failed dependency (no attempt): never retried.
    if job.stop or not job.attempts:
        return False
    return should_retry(
        job.job_definition.retry_strategy,
        len(job.attempts),
        status_reason=job.job_stopped_reason,
        exit_code=job.exit_code,
    )


def _next_attempt(job: Job) -> None:
    setattr(job, _RETRYING, False)
    setattr(job, _RECLAIMED, None)
    job.exit_code = None
    job.job_stopped_reason = None
    job.status = "RUNNABLE"


# --- job faults -----------------------------------------------------------------------------


def strike_if_asked(injector: Injector | None, job: Job, container: Any) -> None:
    """After a job's container started: kill it, or reclaim its host, later if asked."""
    fault = injector.job_fault(job.job_name) if injector else None
    if fault is None:
        return
    kind, after = fault
    timer = threading.Timer(after, _strike, (injector, job, container, kind))
    timer.daemon = True
    timer.start()


def _strike(injector: Injector, job: Job, container: Any, kind: str) -> None:
    if kind == RECLAIM:  # set first: moto may see the container's end at once
        setattr(job, _RECLAIMED, reclaim_reason(new_instance_id()))
    try:
        container.kill()
    except (docker.errors.APIError, requests.RequestException) as exc:
        # The container ended (or went) before its time: nothing was injected.
        setattr(job, _RECLAIMED, None)
        log.info("job %s: no %s, its container had ended (%s)", job.job_id, kind, exc)
        return
    injector.struck(kind)
    what = getattr(job, _RECLAIMED, None) if kind == RECLAIM else "container killed"
    log.info("job %s: injected %s: %s", job.job_id, kind, what)
