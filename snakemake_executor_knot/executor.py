"""Snakemake's view of knot: submit ready jobs to AWS Batch, follow them, cancel them.

Each hook only orders the work; the work lives in ``run/`` (prepare, submission, outcome,
record) and below.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from .aws.capacity import RunnableWatch
from .aws.clients import make_clients
from .aws.secrets import delete_secret
from .aws.status import JobState, StatusPoller, terminate_jobs
from .config.workflow import knot_config
from .errors import KnotError
from .jobs.group import is_group, job_key, job_label, snakemake_job
from .report.reclaims import rule_reclaims
from .report.records import load_run
from .report.terminal import run_summary
from .run.adoption import job_produces
from .run.budget import NOT_SUBMITTED, Budget, in_flight_job
from .run.cadence import Cadence
from .run.estimate import make_budget, read_history, run_prices
from .run.journal import RunLock
from .run.order import dag_order
from .run.outcome import Outcomes, batch_id, is_lost, lost_message
from .run.prepare import Preparation, Services
from .run.progress import Progress
from .run.record import RunLog, close_record
from .run.spot import on_demand_rules, reclaimed_out
from .run.submission import Submissions, batch_size

if TYPE_CHECKING:
    from snakemake.workflow import Workflow

    from .jobs.group import AnyJob


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        # First: Snakemake's status thread is already running and asks it for each wait.
        settings = self.workflow.remote_execution_settings
        self.cadence = Cadence(settings.seconds_between_status_checks)
        self.run_log = RunLog(time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8])
        # While this is held, a later run leaves this run's Batch jobs alone (journal.py).
        self.run_lock: RunLock | None = RunLock(self.run_log.run_id)
        # Snakemake hands executors its Workflow; the interface types only part of it.
        workflow = cast("Workflow", self.workflow)
        knot = knot_config(workflow)
        self.clients = make_clients(knot)
        history = read_history(warn=self._warn)
        self.budget: Budget | None = make_budget(knot, self.clients, history)
        self.progress = Progress(self.logger.info, self.budget.status if self.budget else None)
        # The status thread must find a poller even while preparation is still under way.
        self.poller = StatusPoller(self.clients.batch)
        self.prep = Preparation(workflow, knot, self.clients, self.run_log, self.logger.info)
        self.capacity = RunnableWatch(lambda: self.services.environments(self.clients.batch))
        self.submissions = Submissions(self.prep, self.run_log, self.logger.info)
        prices = run_prices(knot, self.clients.region)
        self.submissions.on_demand_rules = on_demand_rules(rule_reclaims(history, prices))
        jobs = [self.dag.get_job_group(job) or job for job in self.dag.needrun_jobs()]
        self.run_log.rule_order = dag_order(map(snakemake_job, dict.fromkeys(jobs)))
        with self.run_log.step("preparation"):
            self.prep.prepare(map(snakemake_job, jobs))
        self._sweep([snakemake_job(job) for job in jobs])

    def _sweep(self, jobs: list[AnyJob]) -> None:
        """Jobs an earlier run left active in Batch that make none of this run's files
        are terminated before anything is submitted (``Adopter.sweep``)."""
        if self.prep.services is None:  # no job runs in Batch
            return
        uri_for = self.services.staging.uri_for
        produced = {job_produces(job, uri_for) for job in jobs if not job.is_local}
        self.services.adopter.sweep(produced)

    @property
    def services(self) -> Services:
        return self.prep.opened

    # -- submission --

    def run_job(self, job: JobExecutorInterface) -> None:
        self.run_jobs([job])

    def run_jobs(self, given: Sequence[JobExecutorInterface]) -> None:
        given = self._within_budget(given)
        if not given:
            return
        jobs = [snakemake_job(job) for job in given]
        self.run_log.handed_over(jobs)
        self.cadence.submitted()
        for job in given:
            self.run_job_pre(job)
        self.prep.prepare_new(jobs)
        sizes = {job_key(job): in_flight_job(job, batch_size(job, self.prep.knot)) for job in jobs}
        for info in self.submissions.submit(jobs):
            if self.budget is not None and info.external_jobid:
                self.budget.submitted(info.external_jobid, sizes[job_key(snakemake_job(info.job))])
            self.report_job_submission(info)

    def _within_budget(self, given: Sequence[JobExecutorInterface]) -> list:
        """The jobs --knot-budget lets through; each other one fails in Snakemake's eyes
        (no job of this run then starts after it; the jobs in flight finish)."""
        if self.budget is None:
            return list(given)
        knot = self.prep.knot
        sizes = [in_flight_job(job, batch_size(job, knot)) for job in map(snakemake_job, given)]
        admitted, line = self.budget.admit(sizes)
        if line:
            self._warn(line)
        for index, job in enumerate(given):
            if index not in admitted:
                self.report_job_error(SubmittedJobInfo(job), msg=NOT_SUBMITTED)
        return [given[index] for index in admitted]

    # -- status --

    # The interface annotates this async generator as returning a Generator; Snakemake
    # iterates it with 'async for', as the annotation here says.
    async def check_active_jobs(  # type: ignore[override]
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        # Snakemake sleeps this long after the check (see run/cadence.py).
        self.next_seconds_between_status_checks = self.cadence.next_wait(bool(active_jobs))
        if not active_jobs:
            return
        async with self.status_rate_limiter:
            states = self.poller.poll([batch_id(info) for info in active_jobs])
        self._observe(states)
        reported = []
        for info in active_jobs:
            state = states.get(batch_id(info))
            if state is not None and state.finished:
                if self._on_demand_after_reclaims(info, state):
                    yield info
                    continue
                await self._report(info, state)
                reported.append(batch_id(info))
            elif is_lost(info, state):
                self.report_job_error(info, msg=lost_message(info))
            else:
                yield info
        self.services.adopter.record(reported)

    def _observe(self, states: dict[str, JobState]) -> None:
        """One line when the counts per Batch state change; a warning when jobs wait on a
        compute environment that cannot start them; the next wait."""
        if self.budget is not None:
            self.budget.observe(states.values())
        self.progress.update(states.values())
        for warning in self.capacity.update(states.values(), time.time()):
            self._warn(warning)
        statuses = {job_id: state.status for job_id, state in states.items()}
        self.cadence.observe({**statuses, **self.poller.summaries})
        self.next_seconds_between_status_checks = self.cadence.next_wait(True)

    def _on_demand_after_reclaims(self, info: SubmittedJobInfo, state: JobState) -> bool:
        """A job spot took back on every attempt Batch allowed goes on as a new Batch job
        in its class's on-demand queue; Snakemake keeps following it under the new id."""
        if not reclaimed_out(state):
            return False
        old = batch_id(info)
        new = self.submissions.on_demand(old)
        if new is None:
            return False
        job = snakemake_job(info.job)
        self.run_log.reclaimed(job_key(job), state, new)
        if self.budget is not None:
            self.budget.moved(old, new)
        self._warn(
            f"knot: rule {job_label(job)}, jobid {job_key(job)}: spot reclaimed Batch job "
            f"{old} on each of its {state.attempts or state.reclaims} attempt(s); running it "
            f"on demand as Batch job {new}"
        )
        info.external_jobid = new
        return True

    async def _report(self, info: SubmittedJobInfo, state: JobState) -> None:
        key = job_key(snakemake_job(info.job))
        self.run_log.finished(key, state)
        infra = self.services.infra
        outcomes = Outcomes(self.services.staging, self.clients.logs, infra.log_group)
        if state.status == "SUCCEEDED":
            problem = await outcomes.retrieve_checkpoint(info) or outcomes.bring_home(info)
            if problem:
                self.report_job_error(info, msg=problem)
            else:
                self.report_job_success(info)
        else:
            msg, saved = outcomes.failure(info, state)
            self.report_job_error(info, msg=msg, aux_logs=saved)
        self.run_log.reported(key)

    def print_job_error(self, job_info: SubmittedJobInfo, msg: str | None = None, **kwargs) -> None:
        # Snakemake's GroupJob.log_error drops the message (which rule failed, the log
        # tail): say it first.
        if msg and is_group(job_info.job):
            self.logger.error(msg)
        super().print_job_error(job_info, msg, **kwargs)

    # -- end of run --

    def shutdown(self) -> None:
        super().shutdown()
        budget = getattr(self, "budget", None)
        summary = budget.summary() if budget is not None else None
        if summary:
            self._warn(summary)
        lock = getattr(self, "run_lock", None)  # tests build executors without one
        if lock is not None:
            lock.release()
            self.run_lock = None
        services = self.prep.services
        if services is None:
            return
        if services.envvars_ref:  # jobs are over; `knot infra down` removes any left behind
            with contextlib.suppress(KnotError):
                delete_secret(self.clients.secretsmanager, services.envvars_ref["secret"])
        services.adopter.compact()
        images = self.prep.image_counts
        path = close_record(self.run_log, self.clients, self.prep.knot, images, self._warn)
        self._summarise(path)

    def _summarise(self, path: Path) -> None:
        """The short per-rule table, from the record just written."""
        try:
            lines = run_summary(load_run(path))
        except KnotError as exc:  # no job reached Batch: the record holds none to show
            self.logger.info(f"knot: run record in {path} ({exc})")
            return
        self.logger.info("\n".join(f"knot: {line}" for line in lines))
        self.logger.info(f"knot: run record in {path}")

    def _warn(self, msg: str) -> None:
        # Snakemake's logger is a logging.Logger; the interface types only info, error and
        # debug.
        if isinstance(self.logger, logging.Logger):
            self.logger.warning(msg)
        else:
            self.logger.info(msg)

    # -- cancel --

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        ids = [info.external_jobid for info in active_jobs if info.external_jobid]
        if ids:
            terminate_jobs(self.clients.batch, ids, "cancelled by Snakemake")
