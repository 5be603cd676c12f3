"""Everything before a job's first submission: the rule plans, the shared stack, the images
and their job definitions. All of it can fail, and does so before any job is submitted;
rules first seen later (behind a checkpoint) are prepared when their jobs arrive.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..aws.capacity import describe_environments, queue_environments
from ..aws.clients import Clients, caller_identity
from ..aws.jobdef import JobDefinitions
from ..aws.secrets import delete_dead_run_secrets, envvar_reference, store_envvars
from ..aws.service_role import find_service_role
from ..aws.stack import Infra, ensure_infra, require_still_deployed
from ..aws.submit import Submitter
from ..config.settings import KnotConfig
from ..config.workflow import storage_bucket, workflow_envvars
from ..errors import KnotError
from ..image.base import BaseImage
from ..image.conda import conda_home
from ..image.sources import job_paths, named_sources, snakefile_folders, workflow_files
from ..jobs.group import is_group, jobs_of, plan_name
from ..jobs.paths import check_job_paths
from ..jobs.staging import LocalStaging, ensure_bucket
from ..rules.conda import conda_enabled, ignored_notice, spare_host_conda
from .adoption import Adopter
from .plans import (
    RulePlan,
    build_target,
    check_config_secrets,
    check_job_resources,
    check_param_secrets,
    group_plan,
    plan_key,
    plan_rule,
    remote_rules,
)
from .record import RunLog

if TYPE_CHECKING:
    from snakemake.workflow import Workflow

    from ..jobs.group import AnyJob


@dataclass
class Services:
    """What a run uses once the shared stack is known."""

    infra: Infra
    jobdefs: JobDefinitions
    staging: LocalStaging
    submitter: Submitter
    adopter: Adopter
    envvars_ref: dict | None = None  # the specs' envvars: the secret's ARN and the names
    _environment_arns: list[str] | None = field(default=None, repr=False)

    def environments(self, batch: Any) -> list[dict]:
        """The compute environments behind the run's queues (their ARNs asked once)."""
        if self._environment_arns is None:
            queues = self.infra.queues.values()
            self._environment_arns = [a for q in queues for a in queue_environments(batch, q)]
        return describe_environments(batch, self._environment_arns)


class Preparation:
    """The plans of every rule seen so far (by rule, or by a group's plan name), and the
    services they run with."""

    def __init__(
        self,
        workflow: Workflow,
        knot: KnotConfig,
        clients: Clients,
        run_log: RunLog,
        say: Callable[[str], None],
    ) -> None:
        self.workflow, self.knot, self.clients = workflow, knot, clients
        self.run_log, self.say = run_log, say
        self.plans: dict[str, RulePlan] = {}
        self.member_plans: dict[str, RulePlan] = {}  # every rule's, grouped or not
        self.services: Services | None = None
        self.image_counts = {"built": 0, "pushed": 0, "skipped": 0}
        self._docker_client: Any = None
        self._workdir_files: tuple | None = None
        self._conda_noticed: set[str] = set()

    @property
    def opened(self) -> Services:
        """The services, which exist once the first preparation has opened the stack: no
        job is submitted or reported before that."""
        assert self.services is not None, "jobs exist only after preparation"
        return self.services

    def prepare(self, jobs: Iterable[AnyJob]) -> None:
        """Plans, checks, stack and images for these jobs' rules (``jobs``: Snakemake's
        jobs to run, a group's members already gathered into their group job)."""
        jobs = list(dict.fromkeys(jobs))
        rules = remote_rules(jobs)
        if not rules:
            return
        workflow = next(iter(rules.values())).rule.workflow
        self._notice_ignored_conda(workflow, [job.rule for job in rules.values()])
        with self.run_log.step("rule plans"):
            sources = self._sources(workflow, jobs)
            target = build_target(workflow, rules, self.knot, self._base_reference, sources)
            plans = {
                n: plan_rule(workflow, job, self.knot, target, self.say) for n, job in rules.items()
            }
        self.member_plans.update(plans)
        singles = [m for job in jobs for m in jobs_of(job)]
        check_job_resources(singles, self.knot)
        check_param_secrets(singles, self.knot)
        check_config_secrets(workflow.config, next(iter(rules)), self.knot)
        for job in singles:
            if not job.is_local:
                check_job_paths(job, Path.cwd())
        self._provision(_wanted(jobs, plans))

    def _sources(self, workflow: Workflow, jobs: Sequence[AnyJob]) -> tuple:
        """The workflow's source files, read once per run (image/sources.py)."""
        if self._workdir_files is None:
            snakefile_dir = Path(workflow.main_snakefile).parent
            # Every job of the DAG, those already done too: their files are data, not code.
            dag = getattr(workflow, "dag", None)
            every = [*jobs, *(dag.jobs if dag is not None else ())]
            self._workdir_files = workflow_files(
                snakefile_dir,
                Path.cwd(),
                job_paths(every),
                folders=snakefile_folders(workflow),
                named=sorted(named_sources(every)),
            )
        return self._workdir_files

    def _notice_ignored_conda(self, workflow: Workflow, rules: list) -> None:
        """One notice for the rules whose conda: this run ignores (without the flag); with
        it, local jobs need no conda on the host (rules/conda.py, spare_host_conda)."""
        if conda_enabled(workflow):
            spare_host_conda(workflow, conda_home())
            return
        fresh = [rule for rule in rules if rule.name not in self._conda_noticed]
        notice = ignored_notice(fresh)
        if notice:
            self._conda_noticed.update(rule.name for rule in fresh)
            self.say(notice)

    def prepare_new(self, jobs: Sequence[AnyJob]) -> None:
        """Rules first seen after start (e.g. behind a checkpoint) are prepared on arrival."""
        new = [job for job in jobs if plan_key(job) not in self.plans]
        if new:
            self.prepare(new)

    def ensure_storage_bucket(self) -> None:
        bucket = storage_bucket(self.workflow)
        if bucket and ensure_bucket(self.clients.s3, bucket, self.clients.region):
            self.say(f"knot: created the storage bucket s3://{bucket}")

    def _provision(self, plans: dict[str, RulePlan]) -> None:
        from ..image.builder import ImageBuilder, check_platform  # the docker SDK, see _docker

        to_build = [p.image for p in plans.values() if p.image is not None]
        docker = self._docker() if to_build else None
        for platform in sorted({spec.platform for spec in to_build}):
            check_platform(docker, platform)
        caller_identity(self.clients)
        services = self.services or self._open()
        if to_build:
            infra = services.infra
            builder = ImageBuilder(
                docker, self.clients.ecr, infra.repository_uri, infra.repository_name, self.say
            )
            with self.run_log.step("images"):
                builder.ensure_all(to_build)
            self.run_log.image_builds.extend(builder.builds)
            for counter in self.image_counts:
                self.image_counts[counter] += getattr(builder, counter)
            for plan in plans.values():  # by content: one rule may have several (containers)
                if plan.image is not None:
                    plan.image_uri = builder.uri(plan.image)
        for plan in plans.values():
            if plan.image_uri is None:  # built above, or named by knot_image
                raise AssertionError(f"rule {plan.name} has no image")
            plan.job_definition_arn = services.jobdefs.arn_for(plan.image_uri)
        if not self.plans:  # the run's first jobs: the stack read again right before them
            require_still_deployed(self.clients, self.knot)
        self.plans.update(plans)

    def _open(self) -> Services:
        """The stack (created or updated if need be) and the clients of everything on it."""
        self.ensure_storage_bucket()
        self.knot = find_service_role(self.clients, self.knot)
        where = f"'{self.knot.stack_name}' in {self.clients.region}"
        self.say(f"knot: checking the stack {where}")
        with self.run_log.step("stack check"):
            started = time.monotonic()
            infra = ensure_infra(self.clients, self.knot, say=self.say)
        self.say(f"knot: the stack {where} is ready ({time.monotonic() - started:.1f} s)")
        self._delete_dead_run_secrets(infra.stack_name)
        batch = self.clients.batch
        self.services = Services(
            infra=infra,
            jobdefs=JobDefinitions(batch, infra, self.knot),
            staging=LocalStaging(self.clients.s3, infra.bucket, Path.cwd()),
            submitter=Submitter(batch, self.knot.submit_rate),
            adopter=Adopter(batch, self.clients.s3, infra.job_queue_arn, say=self.say),
            envvars_ref=self._store_envvars(infra.stack_name),
        )
        return self.services

    def _delete_dead_run_secrets(self, stack_name: str) -> None:
        """Secrets of runs that were killed before they could delete theirs; a failure
        to look costs this run nothing, so it is only said."""
        try:
            gone = delete_dead_run_secrets(self.clients.secretsmanager, stack_name)
        except KnotError as exc:
            self.say(f"knot: could not look for envvars secrets of runs that died: {exc}")
            return
        if gone:
            self.say(
                f"knot: deleted {len(gone)} envvars secret(s) of runs that ended without "
                f"deleting them: {', '.join(gone)}"
            )

    def _store_envvars(self, stack_name: str) -> dict | None:
        """The values of envvars: and --envvars go to a secret of this run, never into a
        spec or a request. Snakemake has already refused a variable that is not set."""
        names = workflow_envvars(self.workflow)
        if not names:
            return None
        values = {name: os.environ[name] for name in names}
        client = self.clients.secretsmanager
        arn = store_envvars(client, stack_name, self.run_log.run_id, values)
        return envvar_reference(arn, names)

    def _docker(self) -> Any:
        # The docker SDK is slow to import, and Snakemake imports every installed executor
        # plugin at start-up: load it only when a run with knot builds images.
        from ..image.builder import docker_client

        if self._docker_client is None:
            self._docker_client = docker_client()
        return self._docker_client

    def _base_reference(self, base: BaseImage) -> str:
        from ..image.builder import base_reference  # the docker SDK, as in _docker

        return base_reference(self._docker(), base)


def _wanted(jobs: Sequence[AnyJob], plans: dict[str, RulePlan]) -> dict:
    """The plans that need an image and a job definition: every rule run on its own, and one
    per group. A rule that runs only inside groups needs no image of its own."""
    wanted = {plan_key(j): plans[plan_key(j)] for j in jobs if not (is_group(j) or j.is_local)}
    for group in {plan_name(j): j for j in jobs if is_group(j) and not j.is_local}.values():
        wanted[plan_name(group)] = group_plan(group, plans)
    return wanted
