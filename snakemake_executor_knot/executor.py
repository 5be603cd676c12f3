"""Snakemake's view of knot: submit ready jobs to AWS Batch, follow them, cancel them.

The work itself lives in the modules this one calls; this file only orders it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import uuid
from collections import defaultdict
from pathlib import Path

from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor

from .aws.capacity import RunnableWatch, describe_environments, queue_environments
from .aws.clients import caller_identity, make_clients
from .aws.jobdef import JobDefinitions
from .aws.logs import log_tail
from .aws.secrets import delete_secret, envvar_reference, store_envvars
from .aws.service_role import find_service_role
from .aws.stack import ensure_infra
from .aws.status import StatusPoller, describe_exit, terminate_jobs
from .aws.submit import Submitter, build_submit_request
from .aws.template import STACK_TAG
from .compute.resources import job_batch_resources
from .config.settings import KnotConfig, bucket_name_problem, parse_settings
from .errors import ConfigError, KnotError
from .jobs.group import (
    benchmarks,
    build_group_spec,
    external_inputs,
    failed_member,
    group_resources,
    home_items,
    is_group,
    job_key,
    job_label,
    jobs_of,
    member_rules,
    plan_name,
)
from .jobs.paths import check_job_paths
from .jobs.spec import build_spec, upload_specs
from .jobs.staging import LocalStaging, ensure_bucket
from .names import batch_job_name
from .run.adoption import SPEC_TAG, Adopted, Adopter, Entry, spec_hash, submission_hash
from .run.cadence import Cadence
from .run.plans import (
    RulePlan,
    build_target,
    check_job_resources,
    group_plan,
    plan_rule,
    remote_rules,
)
from .run.progress import Progress
from .run.record import RunLog, pricing, usage_location, write_record
from .runtime.contract import GROUP_KIND

MAX_ARRAY = 10_000  # AWS Batch's limit on array children
LOG_TAIL_LINES = 30
LOST_AFTER_POLLS = 5


class Executor(RemoteExecutor):
    envvars_ref: dict | None = None  # the specs' envvars: the secret's ARN and the names

    def __post_init__(self) -> None:
        # First: Snakemake's status thread is already running and asks it for each wait.
        self.cadence = Cadence(
            self.workflow.remote_execution_settings.seconds_between_status_checks
        )
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.run_log = RunLog(self.run_id)
        self.knot = knot_config(self.workflow)
        self.clients = make_clients(self.knot)
        self.progress = Progress(self.logger.info)
        self.capacity = RunnableWatch(self._environments)
        self._environment_arns: list[str] | None = None
        self.plans: dict[str, RulePlan] = {}  # by rule, or by groups.plan_name
        self.member_plans: dict[str, RulePlan] = {}  # every rule's, grouped or not
        self.infra = None
        # Snakemake's status thread is already running; it must find a poller even while
        # the first preparation (stack, images) is still under way.
        self.poller = StatusPoller(self.clients.batch)
        self.image_counts = {"built": 0, "pushed": 0, "skipped": 0}
        self._docker_client = None
        with self.run_log.step("preparation"):
            self._prepare(list(self.dag.needrun_jobs()))

    # -- preparation: everything that can fail does so before the first submission --

    def _prepare(self, jobs) -> None:
        jobs = list(dict.fromkeys(self.dag.get_job_group(job) or job for job in jobs))
        rules = remote_rules(jobs)
        if not rules:
            return
        workflow = next(iter(rules.values())).rule.workflow
        with self.run_log.step("rule plans"):
            target = build_target(workflow, rules, self.knot, self._base_reference)
            plans = {n: plan_rule(workflow, job, self.knot, target) for n, job in rules.items()}
        self.member_plans.update(plans)
        # A rule that runs only inside groups needs no image of its own: its group's has it.
        wanted = {j.rule.name: plans[j.rule.name] for j in jobs if not (is_group(j) or j.is_local)}
        for group in {plan_name(j): j for j in jobs if is_group(j) and not j.is_local}.values():
            wanted[plan_name(group)] = group_plan(group, plans)
        singles = [m for job in jobs for m in jobs_of(job)]
        check_job_resources(singles, self.knot)
        for job in singles:
            if not job.is_local:
                check_job_paths(job, Path.cwd())
        self._provision(wanted)

    def _docker(self):
        # The docker SDK is slow to import, and Snakemake imports every installed executor
        # plugin at start-up: load it only when a run with knot builds images.
        from .image.builder import docker_client

        if self._docker_client is None:
            self._docker_client = docker_client()
        return self._docker_client

    def _base_reference(self, base) -> str:
        from .image.builder import base_reference  # the docker SDK, as in _docker

        return base_reference(self._docker(), base)

    def _provision(self, plans: dict[str, RulePlan]) -> None:
        from .image.builder import ImageBuilder, check_platform  # the docker SDK, as in _docker

        to_build = [p.image for p in plans.values() if p.image is not None]
        docker = self._docker() if to_build else None
        for platform in sorted({spec.platform for spec in to_build}):
            check_platform(docker, platform)
        caller_identity(self.clients)
        if self.infra is None:
            self._ensure_storage_bucket()
            self.knot = find_service_role(self.clients, self.knot)
            with self.run_log.step("stack check"):
                self.infra = ensure_infra(self.clients, self.knot)
            self.jobdefs = JobDefinitions(self.clients.batch, self.infra, self.knot)
            self.staging = LocalStaging(self.clients.s3, self.infra.bucket, Path.cwd())
            self.submitter = Submitter(self.clients.batch, self.knot.submit_rate)
            self.adopter = Adopter(self.clients.batch, self.clients.s3, self.infra.job_queue_arn)
            self._store_envvars()
        if to_build:
            builder = ImageBuilder(
                docker, self.clients.ecr, self.infra.repository_uri, self.infra.repository_name
            )
            with self.run_log.step("images"):
                uris = builder.ensure_all(to_build)
            for counter in self.image_counts:
                self.image_counts[counter] += getattr(builder, counter)
            for name, uri in uris.items():
                plans[name].image_uri = uri
        for plan in plans.values():
            plan.job_definition_arn = self.jobdefs.arn_for(plan.image_uri)
        self.plans.update(plans)

    def _store_envvars(self) -> None:
        """The values of envvars: and --envvars go to a secret of this run, never into a
        spec or a request. Snakemake has already refused a variable that is not set."""
        names = workflow_envvars(self.workflow)
        if names:
            values = {name: os.environ[name] for name in names}
            client = self.clients.secretsmanager
            arn = store_envvars(client, self.infra.stack_name, self.run_id, values)
            self.envvars_ref = envvar_reference(arn, names)

    def _ensure_storage_bucket(self) -> None:
        bucket = storage_bucket(self.workflow)
        if bucket and ensure_bucket(self.clients.s3, bucket, self.clients.region):
            self.logger.info(f"knot: created the storage bucket s3://{bucket}")

    def _plan_for(self, jobs) -> None:
        """Rules first seen after start (e.g. behind a checkpoint) are prepared on arrival."""
        new = [job for job in jobs if job_label(job) not in self.plans]
        if new:
            self._prepare(new)

    # -- submission --

    def run_job(self, job) -> None:
        self.run_jobs([job])

    def run_jobs(self, jobs) -> None:
        self.run_log.handed_over(jobs)
        self.cadence.submitted()
        for job in jobs:
            self.run_job_pre(job)
        self._plan_for(jobs)
        self._clear_outputs(jobs)
        for (rule, resources, *_), group in self._groups(jobs).items():
            for start in range(0, len(group), MAX_ARRAY):
                self._submit(self.plans[rule], resources, group[start : start + MAX_ARRAY])

    def _clear_outputs(self, jobs) -> None:
        """Remove each job's existing directory() outputs before it runs, with the user's
        rights, as Snakemake's local executor does (``Job.prepare``); remote executors leave
        that to the Snakemake inside the job, and knot's jobs have none. The job role cannot
        delete, so a re-run's directory under a storage prefix would otherwise keep the files
        of earlier runs, and so would a local one on disk. A file output is replaced whole
        by the new upload, so it is left alone (and no call is spent on it)."""
        removed = False
        for job in (m for j in jobs for m in jobs_of(j)):
            for f in job.output:
                if getattr(f, "is_directory", False) and not getattr(f, "flags", {}).get("update"):
                    self.workflow.async_run(f.remove(remove_non_empty_dir=True))
                    removed = removed or bool(getattr(f, "is_storage", False))
        if removed:  # snakemake-storage-plugin-s3 deletes a bucket its removal emptied
            self._ensure_storage_bucket()

    def _groups(self, jobs) -> dict[tuple, list]:
        """Jobs of one rule with equal Batch resources share an array job; with array jobs
        off, the job id makes every key unique."""
        groups: dict[tuple, list] = defaultdict(list)
        for job in jobs:
            if is_group(job):
                resources = group_resources(job, self.knot)
            else:
                resources = job_batch_resources(job, self.knot)
            key = (job_label(job), resources)
            if not self.knot.array_jobs:
                key = (*key, job_key(job))
            groups[key].append(job)
        return groups

    def _submit(self, plan: RulePlan, resources, jobs) -> None:
        specs = [self._spec(job, plan) for job in jobs]
        # Hashed before the run's own envvars secret joins them, so a later run adopts.
        hashes = [spec_hash(spec) for spec in specs]
        if self.envvars_ref:
            specs = [{**spec, "envvars": self.envvars_ref} for spec in specs]
        adopted = self.adopter.adopt(plan.name, plan.job_definition_arn, hashes)
        for index, found in adopted.items():
            self._adopt(jobs[index], specs[index], resources, found)
        rest = [i for i in range(len(jobs)) if i not in adopted]
        if rest:
            picked = ([jobs[i] for i in rest], [specs[i] for i in rest], [hashes[i] for i in rest])
            self._submit_new(plan, resources, *picked)

    def _spec(self, job, plan: RulePlan) -> dict:
        first = next(iter(job.jobs)) if is_group(job) else job
        config = first.rule.workflow.config
        if not is_group(job):
            return build_spec(job, plan.source.kind, self.staging.uri_for, config)
        kinds = {name: self.member_plans[name].source.kind for name in member_rules(job)}
        return build_group_spec(job, kinds, self.staging.uri_for, config)

    def _adopt(self, job, spec: dict, resources, found: Adopted) -> None:
        """A job an earlier run submitted, with the same rule, spec content and image, is
        still running or has succeeded: follow it instead of paying for it again."""
        bucket, key = found.spec_uri[len("s3://") :].partition("/")[::2]
        where = usage_location(bucket, key, found.index)
        self.run_log.submitted(job_key(job), found.batch_id, resources, where, adopted=True)
        self.logger.info(
            f"knot: rule {job_label(job)}, jobid {job_key(job)}: adopted Batch job "
            f"{found.batch_id}, left running by an earlier run"
        )
        self.report_job_submission(
            SubmittedJobInfo(job, external_jobid=found.batch_id, aux={"spec": spec})
        )

    def _submit_new(self, plan: RulePlan, resources, jobs, specs, hashes) -> None:
        for spec in specs:
            self.staging.upload_inputs(self._local_paths(external_inputs(spec)), plan.name)
        key = f"knot/specs/{self.run_id}/{plan.name}-{job_key(jobs[0])}.jsonl"
        written = upload_specs(self.clients.s3, self.infra.bucket, key, specs, plan.name)
        array = len(jobs) > 1
        tag = submission_hash(hashes)
        request = build_submit_request(
            job_name=batch_job_name(
                plan.name,
                {} if array or is_group(jobs[0]) else dict(jobs[0].wildcards_dict),
                job_key(jobs[0]),
            ),
            job_definition_arn=plan.job_definition_arn,
            job_queue=self.infra.queue_for(resources.compute_class),
            spec_uri=f"s3://{self.infra.bucket}/{key}",
            spec_record_bytes=written.record_bytes,
            spec_digest=written.digest,
            resources=resources,
            array_size=len(jobs) if array else None,
            # The stack's tag lets a runner terminate only its stack's jobs (policy.py);
            # the spec's lets a later run adopt the job (reattach.py).
            tags={**self.knot.tag_dict, STACK_TAG: self.knot.stack_name, SPEC_TAG: tag},
            rule=plan.name,
        )
        batch_id = self.submitter.submit(request)
        uri = f"s3://{self.infra.bucket}/{key}"
        externals = [f"{batch_id}:{i}" if array else batch_id for i in range(len(jobs))]
        # The journal first: a crash right after SubmitJob must still leave the job adoptable.
        self.adopter.record(
            [
                Entry(
                    h,
                    tag,
                    ext,
                    plan.image_uri,
                    plan.job_definition_arn,
                    plan.name,
                    job_key(job),
                    uri,
                    index,
                )
                for index, (job, h, ext) in enumerate(zip(jobs, hashes, externals, strict=True))
            ]
        )
        for index, (job, spec) in enumerate(zip(jobs, specs, strict=True)):
            where = usage_location(self.infra.bucket, key, index)
            self.run_log.submitted(job_key(job), externals[index], resources, where)
            self.report_job_submission(
                SubmittedJobInfo(job, external_jobid=externals[index], aux={"spec": spec})
            )

    def _local_paths(self, items: list[dict]) -> list[str]:
        return [i["path"] for i in items if self.staging.holds(i["uri"])]

    # -- status --

    async def check_active_jobs(self, active_jobs):
        # Snakemake sleeps this long after the check (see cadence.py).
        self.next_seconds_between_status_checks = self.cadence.next_wait(bool(active_jobs))
        if not active_jobs:
            return
        ids = [info.external_jobid for info in active_jobs]
        async with self.status_rate_limiter:
            states = self.poller.poll(ids)
        self._observe(states)
        statuses = {job_id: state.status for job_id, state in states.items()}
        self.cadence.observe({**statuses, **self.poller.summaries})
        self.next_seconds_between_status_checks = self.cadence.next_wait(True)
        reported = []
        for info in active_jobs:
            state = states.get(info.external_jobid)
            if state is not None and state.finished:
                self.run_log.finished(job_key(info.job), state)
                if state.status == "SUCCEEDED":
                    await _retrieve_checkpoint(info.job)
                    self._succeeded(info)
                else:
                    self._failed(info, state)
                self.run_log.reported(job_key(info.job))
                reported.append(info.external_jobid)
            elif self._lost(info, state):
                self.report_job_error(info, msg=_lost_message(info))
            else:
                yield info
        self.adopter.record(reported)

    def _observe(self, states: dict) -> None:
        """One line when the counts per Batch state change; a warning when jobs wait on a
        compute environment that cannot start them."""
        self.progress.update(states.values())
        for warning in self.capacity.update(states.values(), time.time()):
            self.logger.warning(warning)

    def _environments(self) -> list[dict]:
        if self._environment_arns is None:
            self._environment_arns = [
                arn
                for queue in self.infra.queues.values()
                for arn in queue_environments(self.clients.batch, queue)
            ]
        return describe_environments(self.clients.batch, self._environment_arns)

    def _lost(self, info: SubmittedJobInfo, state) -> bool:
        """A job Batch does not know, several polls in a row. Not on the first poll: a job
        may not be visible right after submission."""
        unknown = state is None or state.status == "UNKNOWN"
        info.aux["unknown_polls"] = info.aux.get("unknown_polls", 0) + 1 if unknown else 0
        return info.aux["unknown_polls"] >= LOST_AFTER_POLLS

    def _succeeded(self, info: SubmittedJobInfo) -> None:
        for job in jobs_of(info.job):
            _forget_directory_misses(job)
        spec = info.aux["spec"]
        try:
            self._fetch_local(spec, "output", must_exist=True)
            self._fetch_local(spec, "log", must_exist=False)
            self._fetch_benchmark(spec)
        except KnotError as exc:
            self.report_job_error(info, msg=str(exc))
            return
        self.report_job_success(info)

    def _failed(self, info: SubmittedJobInfo, state) -> None:
        spec = info.aux["spec"]
        tail = log_tail(self.clients.logs, self.infra.log_group, state.log_stream, LOG_TAIL_LINES)
        aux_log = self._save_log(info, tail)
        # The job's own log files are a courtesy; the error below is what matters.
        with contextlib.suppress(KnotError):
            self._fetch_local(spec, "log", must_exist=False)
        msg = (
            f"AWS Batch job {info.external_jobid} of {_what_failed(spec, tail)} failed: "
            f"{state.reason or 'no reason given'} ({describe_exit(state.exit_code)}).\n"
            f"Last lines of its log ({state.log_stream or 'no log stream'}):\n"
            + "\n".join(tail or ["<log empty or not found>"])
        )
        self.report_job_error(info, msg=msg, aux_logs=[str(aux_log)])

    def print_job_error(self, job_info: SubmittedJobInfo, msg=None, **kwargs) -> None:
        # Snakemake's GroupJob.log_error drops the message (which rule failed, the log
        # tail): say it first.
        if msg and is_group(job_info.job):
            self.logger.error(msg)
        super().print_job_error(job_info, msg, **kwargs)

    def _save_log(self, info: SubmittedJobInfo, lines: list[str]) -> Path:
        path = Path(".snakemake", "log", "knot", f"{info.external_jobid.replace(':', '-')}.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    def _fetch_local(self, spec: dict, kind: str, must_exist: bool) -> None:
        """Local mode: bring the job's files of one kind (output, log) back from S3 (of a
        group: those that come home, see groups.py)."""
        items = [i for i in home_items(spec, kind) if self.staging.holds(i["uri"])]
        self.staging.download_outputs(items, spec["rule"], must_exist=must_exist)

    def _fetch_benchmark(self, spec: dict) -> None:
        for bench in benchmarks(spec):
            if self.staging.holds(bench["uri"]):
                item = {**bench, "directory": False}
                self.staging.download_outputs([item], spec["rule"], must_exist=False)

    # -- end of run --

    def shutdown(self) -> None:
        super().shutdown()
        if self.envvars_ref:  # jobs are over; `knot infra down` removes any left behind
            with contextlib.suppress(KnotError):
                delete_secret(self.clients.secretsmanager, self.envvars_ref["secret"])
        if self.infra is not None:
            with self.run_log.step("usage documents"):
                self.run_log.fetch_usage(self.clients.s3)
                self._instance_types()
            self.run_log.ended = time.time()
            place = pricing(self.knot, self.clients.region)
            record = self.run_log.as_dict(place, self.clients.calls, self.image_counts)
            path = write_record(record)
            self.logger.info(f"knot: run summary in {path} (see it with 'knot report')")

    def _instance_types(self) -> None:
        """For the record's costs; a refusal (an older runner policy) costs only precision."""
        if self.knot.emulator:  # moto's jobs run on no instance
            classes = {c.name: c.instance_types for c in self.knot.compute_classes}
            self.run_log.estimate_instance_types(classes, self.clients.region)
            return
        try:
            self.run_log.find_instance_types(self.clients.batch, self.clients.ecs)
        except KnotError as exc:
            self.logger.warning(f"knot: {exc} The report estimates the instance types.")

    # -- cancel --

    def cancel_jobs(self, active_jobs) -> None:
        ids = [info.external_jobid for info in active_jobs if info.external_jobid]
        if ids:
            terminate_jobs(self.clients.batch, ids, "cancelled by Snakemake")


async def _retrieve_checkpoint(job) -> None:
    """Storage mode: bring a checkpoint's outputs to their local paths, where the host's
    input functions read them (``glob_wildcards`` on the checkpoint's folder), as after a
    local run. Snakemake retrieves nothing itself for a job that ran remotely."""
    if not job.is_checkpoint:
        return
    _forget_directory_misses(job)
    for f in job.output:
        if getattr(f, "is_storage", False):
            await f.retrieve_from_storage()


def _forget_directory_misses(job) -> None:
    """snakemake-storage-plugin-s3 memoises "not a directory" (``_is_dir``) when Snakemake
    checks a missing directory() output before the job; after the job wrote it, that stale
    answer would make the output look missing. Forget it, so the plugin lists again."""
    for f in job.output:
        if getattr(f, "is_storage", False) and getattr(f, "is_directory", False):
            obj = f.storage_object
            if getattr(obj, "_is_dir", None) is False:
                obj._is_dir = None


def workflow_envvars(workflow) -> list[str]:
    """The names of envvars: and --envvars (Snakemake's own storage-plugin variables,
    which its executor also passes on, are not asked for here)."""
    remote = workflow.remote_execution_settings
    return sorted({*(remote.envvars if remote else ()), *workflow.envvars})


def storage_bucket(workflow) -> str | None:
    """The bucket of an s3:// --default-storage-prefix (storage mode), if any; a name S3
    would refuse is a ConfigError before knot creates anything."""
    prefix = workflow.storage_settings.default_storage_prefix or ""
    if not prefix.startswith("s3://"):
        return None
    bucket = prefix[5:].split("/", 1)[0]
    problem = bucket_name_problem(bucket)
    if problem:
        raise ConfigError(
            f"--default-storage-prefix '{prefix}': '{bucket}' is not a valid S3 bucket name "
            f"({problem}). Use a prefix such as 's3://my-results/run1'."
        )
    return bucket


def knot_config(workflow) -> KnotConfig:
    """The parsed flags, plus the default storage prefix's bucket, which the job role must
    be able to reach in storage mode."""
    config = parse_settings(workflow.executor_settings)
    bucket = storage_bucket(workflow)
    if bucket and bucket not in config.buckets:
        config = dataclasses.replace(config, buckets=(*config.buckets, bucket))
    return config


def _what_failed(spec: dict, tail: list[str] | None) -> str:
    """``rule 'x'``; for a group, the member rule that failed, as its log tail says."""
    if spec["kind"] != GROUP_KIND:
        return f"rule '{spec['rule']}'"
    rules = ", ".join(sorted({m["rule"] for m in spec["members"]}))
    failed = failed_member(spec, tail or [])
    where = f"rule '{failed}' in " if failed else ""
    return f"{where}group '{spec['group']}' (rules {rules})"


def _lost_message(info: SubmittedJobInfo) -> str:
    return (
        f"AWS Batch no longer knows job {info.external_jobid} of rule "
        f"'{job_label(info.job)}' (it was deleted, or the queue was torn down). "
        "Run the workflow again to resubmit it."
    )
