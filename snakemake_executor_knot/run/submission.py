"""Submitting ready jobs: ready jobs of one rule with equal Batch resources share an array
job; a job an earlier run left in Batch with the same rule, spec content and image is adopted
instead of submitted again (``adoption.py``). The spec records each input's identity
(``jobs/identity.py``), so a changed input is a changed spec: the earlier job is then
terminated and a new one submitted. Every job's spec is in S3, and its journal line
written, before Snakemake hears of it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

from ..aws.logs import printable
from ..aws.status import split_child
from ..aws.submit import build_submit_request
from ..aws.tags import job_tags
from ..compute.group import group_resources
from ..compute.resources import BatchResources, job_batch_resources
from ..config.settings import KnotConfig
from ..jobs.config import config_object, rule_config, upload_config
from ..jobs.group import (
    build_group_spec,
    external_inputs,
    is_group,
    job_key,
    job_label,
    jobs_of,
    member_rules,
)
from ..jobs.identity import set_identities, storage_identity
from ..jobs.spec import build_spec, upload_specs
from ..jobs.staging import workflow_id
from ..names import batch_job_name
from .adoption import Adopted, spec_hash, spec_produces, submission_hash
from .journal import Entry
from .plans import RulePlan, check_config_secrets, check_param_secrets, plan_key
from .prepare import Preparation, Services
from .record import RunLog, job_wildcards, usage_location
from .spot import on_demand_request

if TYPE_CHECKING:
    from snakemake.workflow import Workflow

    from ..jobs.group import AnyJob

MAX_ARRAY = 10_000  # AWS Batch's limit on array children

Jobs = Sequence["AnyJob"]


class Submissions:
    """Turns ready jobs into Batch jobs (new or adopted), one SubmittedJobInfo each."""

    def __init__(self, prep: Preparation, run_log: RunLog, say: Callable[[str], None]) -> None:
        self.prep, self.run_log, self.say = prep, run_log, say
        self._configs_sent: set[str] = set()  # SHA-256 of each config object written
        self._workflow: str | None = None  # the knot:workflow tag, made once
        # Batch id -> the SubmitJob request and compute class of each submission, for a
        # job spot reclaimed out, which goes again on demand (spot.py).
        self._requests: dict[str, tuple[dict, str]] = {}
        # Batch id ('<parent>:<index>' for a child) -> its journal entry, which the job
        # keeps when it goes again on demand.
        self._entries: dict[str, Entry] = {}
        # Rule -> why it starts on demand (its reclaims in earlier runs); said once.
        self.on_demand_rules: dict[str, str] = {}
        self._said_on_demand: set[str] = set()

    def submit(self, jobs: Jobs) -> list[SubmittedJobInfo]:
        done: list[SubmittedJobInfo] = []
        for (key, resources, *_), batch in self._batches(jobs).items():
            for start in range(0, len(batch), MAX_ARRAY):
                part = batch[start : start + MAX_ARRAY]
                done += self._submit(self.prep.plans[key], resources, part)
        return done

    @property
    def services(self) -> Services:
        return self.prep.opened

    def _batches(self, jobs: Jobs) -> dict[tuple, list]:
        """Jobs of one rule with equal Batch resources share an array job; with array jobs
        off, the job id makes every key unique."""
        knot = self.prep.knot
        batches: dict[tuple, list] = defaultdict(list)
        for job in jobs:
            key: tuple = (plan_key(job), batch_size(job, knot))
            if not knot.array_jobs:
                key = (*key, job_key(job))
            batches[key].append(job)
        return batches

    def _submit(self, plan: RulePlan, resources: BatchResources, jobs: Jobs) -> list:
        check_param_secrets((m for job in jobs for m in jobs_of(job)), self.prep.knot)
        config_ref = self._config_ref(jobs[0], plan.name)
        specs = [self._spec(job, plan, config_ref) for job in jobs]
        self._stage(plan, specs)
        # Hashed before the run's own envvars secret joins them, so a later run adopts.
        hashes = [spec_hash(spec) for spec in specs]
        envvars = self.services.envvars_ref
        if envvars:
            specs = [{**spec, "envvars": envvars} for spec in specs]
        adopter = self.services.adopter
        adopted = adopter.adopt(plan.name, plan.provisioned[1], hashes)
        for index, job in enumerate(jobs):
            keep = adopted[index].batch_id if index in adopted else None
            older = adopter.retire(spec_produces(specs[index]), keep)
            for entry in older:
                self.say(_superseded(job, entry, plan.provisioned[1]))
        done = [self._adopt(jobs[i], specs[i], resources, found) for i, found in adopted.items()]
        rest = [i for i in range(len(jobs)) if i not in adopted]
        if rest:
            picked = ([jobs[i] for i in rest], [specs[i] for i in rest], [hashes[i] for i in rest])
            self._clear(picked[0])
            done += self._submit_new(plan, resources, *picked)
        return done

    def _stage(self, plan: RulePlan, specs: list[dict]) -> None:
        """Local inputs into knot's bucket, then every input's identity into the specs:
        before the adoption decision, which their hashes make."""
        staging, s3 = self.services.staging, self.prep.clients.s3
        for spec in specs:
            local = [i["path"] for i in external_inputs(spec) if staging.holds(i["uri"])]
            staging.upload_inputs(local, plan.name)

        def identity(item: dict) -> str:
            if staging.holds(item["uri"]):
                return staging.identity(item, plan.name)
            return storage_identity(s3, item, plan.name)

        set_identities(specs, identity)

    def _clear(self, jobs: Jobs) -> None:
        """Directory outputs go only for jobs submitted anew: an adopted job may be
        writing them."""
        if clear_outputs(self.prep.workflow, jobs):
            self.prep.ensure_storage_bucket()

    def _spec(self, job: AnyJob, plan: RulePlan, config_ref: dict | None) -> dict:
        uri_for = self.services.staging.uri_for
        if not is_group(job):
            return build_spec(job, plan.source.kind, uri_for, config_ref)
        kinds = {name: self.prep.member_plans[name].source.kind for name in member_rules(job)}
        return build_group_spec(job, kinds, uri_for, config_ref)

    def _config_ref(self, job: AnyJob, rule: str) -> dict | None:
        """The reference to the run's config object (``jobs/config.py``), which is checked
        for secrets and written once per content."""
        config = rule_config(jobs_of(job)[0].rule)
        written = config_object(config, rule)
        if written is None:
            return None
        bucket = self.services.infra.bucket
        if written.sha256 not in self._configs_sent:
            check_config_secrets(config, rule, self.prep.knot)
            upload_config(self.prep.clients.s3, bucket, written, rule)
            self._configs_sent.add(written.sha256)
        return written.reference(bucket)

    def _adopt(
        self, job: AnyJob, spec: dict, resources: BatchResources, found: Adopted
    ) -> SubmittedJobInfo:
        """A job an earlier run submitted, with the same rule, spec content and image, is
        still running or has succeeded: follow it instead of paying for it again."""
        bucket, key = found.spec_uri[len("s3://") :].partition("/")[::2]
        where = usage_location(bucket, key, found.index)
        self.run_log.submitted(job_key(job), found.batch_id, resources, where, adopted=True)
        self.say(
            f"knot: rule {job_label(job)}, jobid {job_key(job)}: adopted Batch job "
            f"{found.batch_id}, left running by an earlier run"
        )
        return SubmittedJobInfo(job, external_jobid=found.batch_id, aux={"spec": spec})

    def _submit_new(
        self,
        plan: RulePlan,
        resources: BatchResources,
        jobs: Jobs,
        specs: list[dict],
        hashes: list[str],
    ) -> list[SubmittedJobInfo]:
        services = self.services
        infra = services.infra
        key = f"knot/specs/{self.run_log.run_id}/{plan.name}-{job_key(jobs[0])}.jsonl"
        written = upload_specs(self.prep.clients.s3, infra.bucket, key, specs, plan.name)
        array = len(jobs) > 1
        tag = submission_hash(hashes)
        uri = f"s3://{infra.bucket}/{key}"
        request = build_submit_request(
            job_name=_job_name(plan, jobs, array),
            job_definition_arn=plan.provisioned[1],
            job_queue=self._queue(plan.name, resources.compute_class),
            spec_uri=uri,
            spec_record_bytes=written.record_bytes,
            spec_digest=written.digest,
            resources=resources,
            array_size=len(jobs) if array else None,
            tags=self._tags(tag, plan.name, jobs),
            rule=plan.name,
            cache_bytes=self._cache_bytes(resources.compute_class),
        )
        batch_id = services.submitter.submit(request)
        self._requests[batch_id] = (request, resources.compute_class)
        externals = [f"{batch_id}:{i}" if array else batch_id for i in range(len(jobs))]
        self.say(submitted_line(plan.name, batch_id, jobs, array))
        # The journal first: a crash right after SubmitJob must still leave the job adoptable.
        entries = _entries(plan, jobs, specs, hashes, externals, tag, uri, self.run_log.run_id)
        services.adopter.record(entries)
        self._entries.update((e.batch_id, e) for e in entries)
        done = []
        for index, (job, spec) in enumerate(zip(jobs, specs, strict=True)):
            where = usage_location(infra.bucket, key, index)
            self.run_log.submitted(job_key(job), externals[index], resources, where)
            done.append(SubmittedJobInfo(job, external_jobid=externals[index], aux={"spec": spec}))
        return done

    def _queue(self, rule: str, compute_class: str) -> str:
        """The class's queue (spot first), or its on-demand one for a rule whose reclaims
        cost more than on demand would (``spot.on_demand_rules``)."""
        infra = self.services.infra
        queue, on_demand = infra.queue_for(compute_class), infra.on_demand_queue_for(compute_class)
        why = self.on_demand_rules.get(rule)
        if why is None or queue == on_demand:  # a class without spot says nothing
            return queue
        if rule not in self._said_on_demand:
            self._said_on_demand.add(rule)
            self.say(why)
        return on_demand

    def on_demand(self, batch_id: str) -> str | None:
        """Submit the job ``batch_id`` (spot reclaimed it out) again, alone, to its class's
        on-demand queue; its new Batch id, or None when it ran on demand already or knot
        did not submit it (an adopted job)."""
        parent, index = split_child(batch_id)
        found = self._requests.get(parent)
        if found is None:
            return None
        request, compute_class = found
        queue = self.services.infra.on_demand_queue_for(compute_class)
        if queue == request["jobQueue"]:
            return None
        again = on_demand_request(request, index, queue)
        new_id = self.services.submitter.submit(again)
        self._requests[new_id] = (again, compute_class)
        self._journal_move(batch_id, new_id)
        return new_id

    def _journal_move(self, old: str, new: str) -> None:
        """The job under its new id in the journal, with the same spec record and tags, so
        a run killed while it runs on demand adopts it instead of paying for it again."""
        entry = self._entries.get(old)
        if entry is None:
            return
        moved = dataclasses.replace(entry, batch_id=new)
        self.services.adopter.record([moved])
        self._entries[new] = moved

    def _cache_bytes(self, name: str) -> int:
        klass = self.prep.knot.compute_class(name)
        return klass.cache_bytes if klass is not None else 0

    def _tags(self, submission: str, rule: str, jobs: Jobs) -> dict[str, str]:
        """The stack's tag lets a runner terminate only its stack's jobs (policy.py); the
        spec's lets a later run adopt the job (adoption.py); run, workflow and rule split
        the bill (aws/tags.py)."""
        knot = self.prep.knot
        return job_tags(
            knot.tag_dict,
            stack=knot.stack_name,
            spec=submission,
            run=self.run_log.run_id,
            workflow=self._workflow_tag(),
            rule=rule,
            wildcards=wildcards_text(jobs),
        )

    def _workflow_tag(self) -> str:
        """The working folder's name and knot's id for it (``jobs/staging.py``): readable
        in Cost Explorer, and apart for two folders of the same name."""
        if self._workflow is None:
            folder = Path.cwd()
            self._workflow = f"{folder.name or 'root'}/{workflow_id(folder)}"
        return self._workflow


def batch_size(job: AnyJob, knot: KnotConfig) -> BatchResources:
    """The job's Batch size and class; a group's is its largest member's."""
    return group_resources(job, knot) if is_group(job) else job_batch_resources(job, knot)


def _job_name(plan: RulePlan, jobs: Jobs, array: bool) -> str:
    """A job's name carries its rule and wildcards; an array's, the wildcard values all
    its children share (each child's are in the run record and the log line)."""
    return batch_job_name(plan.name, common_wildcards(jobs), job_key(jobs[0]))


def common_wildcards(jobs: Jobs) -> dict[str, str]:
    """The wildcards every job has with the same value (a group job has none of its own)."""
    each = [job_wildcards(job) for job in jobs]
    first = each[0]
    return {k: v for k, v in first.items() if all(w.get(k) == v for w in each[1:])}


# Batch's tag values: up to 256 of letters, digits, spaces and _ . : / = + - @.
def wildcards_text(jobs: Jobs) -> str:
    """ "name=value name=value" of the wildcards the jobs share, for the ``knot:wildcards``
    tag (``aws/tags.py`` keeps it within Batch's limits); empty without any."""
    return " ".join(f"{k}={v}" for k, v in common_wildcards(jobs).items())


SHOWN_CHILDREN = 4  # an array's children named in its submission line


def submitted_line(rule: str, batch_id: str, jobs: Jobs, array: bool) -> str:
    """One line per SubmitJob: the Batch id and which Snakemake jobs (jobid, wildcards) it
    runs; for an array, its first children by index, then how many more."""
    if not array:
        return f"knot: rule {rule}: Batch job {batch_id} = {_who(jobs[0])}"
    shown = "; ".join(f":{i} {_who(job)}" for i, job in enumerate(jobs[:SHOWN_CHILDREN]))
    more = len(jobs) - SHOWN_CHILDREN
    rest = f"; and {more} more (see 'knot jobs' or the run record)" if more > 0 else ""
    return f"knot: rule {rule}: Batch array job {batch_id}, {len(jobs)} children: {shown}{rest}"


def _who(job: AnyJob) -> str:
    wildcards = " ".join(f"{k}={v}" for k, v in job_wildcards(job).items())
    return f"jobid {job_key(job)}" + (f" ({printable(wildcards)})" if wildcards else "")


def _superseded(job: AnyJob, entry: Entry, job_definition: str) -> str:
    what = "code or image" if entry.job_definition != job_definition else "inputs or params"
    return (
        f"knot: rule {job_label(job)}, jobid {job_key(job)}: terminated Batch job "
        f"{entry.batch_id}, left running by an earlier run: its {what} changed since "
        "(it makes the same files); submitting anew"
    )


def _entries(
    plan: RulePlan, jobs: Jobs, specs, hashes, externals, tag: str, uri: str, run_id: str
) -> list[Entry]:
    return [
        Entry(
            spec=h,
            submission=tag,
            batch_id=ext,
            image=plan.provisioned[0],
            job_definition=plan.provisioned[1],
            rule=plan.name,
            jobid=job_key(job),
            spec_uri=uri,
            index=index,
            produces=spec_produces(spec),
            run=run_id,
        )
        for index, (job, spec, h, ext) in enumerate(
            zip(jobs, specs, hashes, externals, strict=True)
        )
    ]


def clear_outputs(workflow: Workflow, jobs: Jobs) -> bool:
    """Remove each job's existing directory() outputs before it runs, with the user's
    rights, as Snakemake's local executor does (``Job.prepare``); remote executors leave
    that to the Snakemake inside the job, and knot's jobs have none. The job role cannot
    delete, so a re-run's directory under a storage prefix would otherwise keep the files
    of earlier runs, and so would a local one on disk. A file output is replaced whole
    by the new upload, so it is left alone (and no call is spent on it).

    True when a storage object was removed: snakemake-storage-plugin-s3 deletes a bucket
    its removal emptied, so the caller makes sure the bucket exists again."""
    removed = False
    for job in (m for j in jobs for m in jobs_of(j)):
        for f in job.output:
            if getattr(f, "is_directory", False) and not getattr(f, "flags", {}).get("update"):
                workflow.async_run(f.remove(remove_non_empty_dir=True))
                removed = removed or bool(getattr(f, "is_storage", False))
    return removed
