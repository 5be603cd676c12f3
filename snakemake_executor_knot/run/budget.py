"""``--knot-budget``: no new job once the run's spend so far, plus the predicted cost of
the jobs in flight and of the job about to go, would pass the budget.

Spend so far is priced as ``knot report`` prices it (``report/pricing.py``'s ``price_job``
over Batch's start and stop times and the instance type the job ran on, or the cheapest
allowed type that fits when Batch does not say). What a job in flight will cost is asked of
a small pluggable function, ``estimate_in_flight(job) -> USD`` (``estimate.py`` holds the
default). Once the gate closes it stays closed for the run: jobs in flight finish and are
kept, and a re-run with a new or raised budget continues from their outputs.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..aws.status import SUCCEEDED, JobState
from ..compute.resources import BatchResources
from ..jobs.group import job_key, job_label
from ..report.pricing import PriceContext, billed_seconds, price_job
from ..report.records import BatchTimes, HostTimes, JobRecord, Requested, Usage

if TYPE_CHECKING:
    from ..jobs.group import AnyJob

# What Snakemake prints for each job the gate keeps back (the reason is said once, above).
NOT_SUBMITTED = "knot: not submitted: the run's --knot-budget is reached (see above)"


@dataclass(frozen=True)
class InFlightJob:
    """What the budget knows of a job before and while it runs: its rule and Batch size."""

    rule: str
    jobid: int
    vcpus: int
    memory_mib: int
    gpus: int
    compute_class: str
    limit_s: int | None  # the rule's `runtime` resource, in seconds


def in_flight_job(job: AnyJob, size: BatchResources) -> InFlightJob:
    return InFlightJob(
        job_label(job),
        job_key(job),
        size.vcpus,
        size.memory_mib,
        size.gpus,
        size.compute_class,
        size.timeout_s,
    )


Estimate = Callable[[InFlightJob], float]
InstanceTypeOf = Callable[[str], "str | None"]  # container instance ARN -> instance type


def finished_record(job: InFlightJob, state: JobState, instance_type: str | None) -> JobRecord:
    """A finished job as the run record will hold it, for ``knot report``'s pricing."""
    return JobRecord(
        jobid=job.jobid,
        rule=job.rule,
        batch_id=state.job_id,
        status=state.status,
        attempts=state.attempts,
        reason=state.reason,
        requested=Requested(job.vcpus, job.memory_mib, job.gpus),
        instance_type=instance_type,
        host=HostTimes(),
        batch=BatchTimes(state.created, state.started, state.stopped),
        usage=Usage(),
    )


class Budget:
    """The gate before each submission, and the spend the progress line shows."""

    def __init__(
        self,
        limit_usd: float,
        estimate: Estimate,
        context: PriceContext,
        instance_type_of: InstanceTypeOf = lambda arn: None,
        observe_runtime: Callable[[str, float], None] = lambda rule, seconds: None,
    ) -> None:
        self.limit = limit_usd
        self.estimate, self.context = estimate, context
        self.instance_type_of, self.observe_runtime = instance_type_of, observe_runtime
        self.spent = 0.0
        self.closed = False
        self.flying: dict[str, tuple[InFlightJob, float]] = {}  # batch id -> job, estimate
        self.ran: Counter[str] = Counter()  # rule -> jobs finished in this run
        self.refused: list[InFlightJob] = []
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> float:
        return sum(estimate for _, estimate in self.flying.values())

    def admit(self, jobs: Sequence[InFlightJob]) -> tuple[list[int], str | None]:
        """The indexes of ``jobs`` that may be submitted, in order, and the one line that
        says the gate closed (None while it stays open). A job that would pass the budget
        closes the gate for it and for every later one."""
        with self._lock:
            admitted, planned = [], self.spent + self.in_flight
            closing = not self.closed
            for index, job in enumerate(jobs):
                cost = self.estimate(job)
                if not self.closed and planned + cost <= self.limit:
                    admitted.append(index)
                    planned += cost
                    continue
                self.closed = True
                self.refused.append(job)
            if not (closing and self.closed):
                return admitted, None
            flying = len(self.flying) + len(admitted)
            return admitted, self._closing_line(planned - self.spent, flying)

    def submitted(self, batch_id: str, job: InFlightJob) -> None:
        with self._lock:
            self.flying[batch_id] = (job, self.estimate(job))

    def moved(self, old: str, new: str) -> None:
        """A job in flight goes on as another Batch job (on demand after reclaims)."""
        with self._lock:
            if old in self.flying:
                self.flying[new] = self.flying.pop(old)

    def observe(self, states: Iterable[JobState]) -> None:
        """Finished jobs leave the in-flight sum and add what they cost to the spend."""
        with self._lock:
            for state in states:
                if state.finished and state.job_id in self.flying:
                    job, estimate = self.flying.pop(state.job_id)
                    self.spent += self._cost(job, state, estimate)
                    if state.status == SUCCEEDED:
                        self.ran[job.rule] += 1

    def _cost(self, job: InFlightJob, state: JobState, estimate: float) -> float:
        """What a finished job cost, as ``knot report`` prices it (``price_job``)."""
        arn = state.container_instance
        record = finished_record(job, state, self.instance_type_of(arn) if arn else None)
        seconds = billed_seconds(record)
        if seconds is not None and state.status == SUCCEEDED:
            self.observe_runtime(job.rule, seconds)
        priced = price_job(record, job.vcpus, job.memory_mib, self.context)
        if priced is not None:
            return priced[0]
        # No times: a job that never started cost nothing; otherwise trust the estimate.
        return 0.0 if state.started is None else estimate

    def status(self) -> str:
        """For the progress line: the spend so far against the budget."""
        return f"spent ${self.spent:.4f} of ${self.limit:.4f} budget"

    def _closing_line(self, in_flight: float, flying: int) -> str:
        """``in_flight``: the estimates of the ``flying`` jobs, those just let go included."""
        return (
            f"knot: budget reached: spent ${self.spent:.4f} so far, ${in_flight:.4f} "
            f"predicted for {flying} job(s) in flight, ${self.limit:.4f} budget; "
            f"submitting no new job (jobs in flight finish and are kept)"
        )

    def summary(self) -> str | None:
        """At the end of a run whose budget was reached: what ran, what did not, the spend."""
        if not self.closed:
            return None
        ran = _by_rule(self.ran.elements()) or "nothing"
        refused = _by_rule(job.rule for job in self.refused)
        return (
            f"knot: budget of ${self.limit:.4f} reached: spent ${self.spent:.4f}; ran {ran}; "
            f"not submitted: {refused}, and the jobs that need their outputs. Run again with "
            "a new or raised --knot-budget to continue from here."
        )


def _by_rule(rules: Iterable[str]) -> str:
    counts = Counter(rules)
    return ", ".join(f"{rule} x{n}" for rule, n in sorted(counts.items()))
