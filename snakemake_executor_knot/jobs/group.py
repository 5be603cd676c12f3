"""Group jobs (``group:``, ``--groups``, ``--group-components``): every member job of one
Snakemake GroupJob runs in ONE Batch job, one after another in the group's topological
order, in one image that holds the code of each member rule (pure: no AWS call here). This
module holds what that Batch job carries: the group's identity, its spec, and which files
travel. Its size and class are decided in ``compute/group.py``, its image in
``image/group.py``.

Which files travel, decided once here and followed by the host and the runtime:
- in: an input made by an earlier member is already on the job's disk and is not
  downloaded (``"from_group": true``); every other input is staged in as for a single job;
- out: every member output is uploaded (and, in local mode, fetched home) EXCEPT a
  ``temp()`` (or ``nodelocal``) output that no job outside the group still needs and that
  is no target of the run: exactly the outputs Snakemake's ``GroupJob.postprocess`` lets be
  missing (``ignore_missing_output``). Those stay on the job's disk (``"upload": false``).
  Every other output comes home, because Snakemake checks each member's outputs after the
  group ends; logs and benchmarks always come home.
- pipes: a ``pipe()`` output is a named FIFO on the job's disk (``"pipe": true``, never
  uploaded), and the members it joins carry the same ``pipe_group``: the runtime runs them
  at the same time (runtime/pipes.py), as Snakemake does. A ``service()`` output is refused.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from ..errors import RuleError
from ..runtime.contract import GROUP_KIND, MEMBERS_DIR, SPEC_VERSION
from .spec import UriFor, build_spec

if TYPE_CHECKING:
    from typing import TypeAlias

    from snakemake.jobs import GroupJob, Job
    from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
    from typing_extensions import TypeIs

    # What Snakemake's scheduler hands an executor: a job, or a group job of several.
    AnyJob: TypeAlias = Job | GroupJob

_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


def snakemake_job(job: JobExecutorInterface) -> AnyJob:
    """Snakemake's scheduler hands executors its own Job and GroupJob objects; its executor
    interface types them only as far as every executor needs."""
    return cast("AnyJob", job)


def is_group(job: object) -> TypeIs[GroupJob]:
    return bool(getattr(job, "is_group", lambda: False)())


def members(job: GroupJob) -> list:
    """The member jobs in the order they run: Snakemake's topological layers, each layer
    by jobid so the order (and the spec's hash) is stable."""
    return [m for layer in job.toposorted for m in sorted(layer, key=lambda m: m.jobid)]


def jobs_of(job: AnyJob) -> tuple[Job, ...]:
    """The Snakemake jobs a job stands for: a group's members (in no set order), or itself."""
    return tuple(job.jobs) if is_group(job) else (job,)


def member_rules(job: GroupJob) -> list[str]:
    return sorted({m.rule.name for m in job.jobs})


def plan_name(job: GroupJob) -> str:
    """The name a group's plan, image, spec object and ``knot:rule`` tag go by; it cannot
    clash with a rule's (rule names are identifiers, this holds ':')."""
    groupid = _UNSAFE.sub("_", str(job.groupid)).strip("_") or "group"
    return f"group:{groupid}:{'+'.join(member_rules(job))}"


def job_key(job: AnyJob) -> int:
    """An integer id for a Batch job name and the run record: a group's first member's
    jobid (Snakemake's own group jobid is a UUID)."""
    return members(job)[0].jobid if is_group(job) else job.jobid


def job_label(job: AnyJob) -> str:
    return plan_name(job) if is_group(job) else job.rule.name


def staying_outputs(job: GroupJob) -> set[str]:
    """Paths of member outputs that stay on the job's disk (see the module's docstring)."""
    dag = job.dag
    inside = set(job.jobs)
    stay = set()
    for member in job.jobs:
        for f in member.output:
            flags = getattr(f, "flags", {}) or {}
            if not (flags.get("temp") or flags.get("nodelocal")):
                continue
            if f in dag.targetfiles or _needed_outside(dag, member, f, inside):
                continue
            stay.add(str(f))
    return stay


def _needed_outside(dag, member, f, inside: set) -> bool:
    return any(
        f in files
        for other, files in dag.depending[member].items()
        if other not in inside and not dag.finished(other) and dag.needrun(other)
    )


# ---- the spec


def build_group_spec(
    job: GroupJob, kinds: dict[str, str], uri_for: UriFor, config_ref: dict | None = None
) -> dict:
    """One document for the whole group: its members' documents in run order, the config
    reference once (``config.py``). ``kinds`` maps each member rule to run, shell or script."""
    stay = staying_outputs(job)
    ordered = members(job)
    pipe_groups = pipe_group_numbers(ordered)
    docs = []
    for member in ordered:
        rule = member.rule.name
        doc = build_spec(member, kinds[rule], uri_for, rule_dir=f"{MEMBERS_DIR}/{rule}/rule")
        mark_pipes(member, doc)
        for item in doc["output"]["items"]:
            if item["path"] in stay:
                item["upload"] = False
        if member in pipe_groups:
            doc["pipe_group"] = pipe_groups[member]
        docs.append({k: v for k, v in doc.items() if k != "version"})
    # Made inside: by any member, since a pipe's reader may stand before its writer.
    made = {item["path"] for doc in docs for item in doc["output"]["items"]}
    for doc in docs:
        for item in doc["input"]["items"]:
            if item["path"] in made:
                item["from_group"] = True
    spec = {
        "version": SPEC_VERSION,
        "kind": GROUP_KIND,
        "rule": plan_name(job),
        "jobid": job_key(job),
        "group": str(job.groupid),
        "members": docs,
    }
    return {**spec, "config_ref": config_ref} if config_ref else spec


def pipe_group_numbers(ordered: list) -> dict:
    """Each member a pipe joins to others, numbered by its pipe group (Snakemake's
    ``pipe_group``, an object id) in the order the groups first appear."""
    numbers: dict = {}
    found = {}
    for member in ordered:
        group = getattr(member, "pipe_group", None)
        if group is not None:
            found[member] = numbers.setdefault(group, len(numbers))
    return found


def mark_pipes(member, doc: dict) -> None:
    """A member's pipe() outputs: FIFOs on the job's disk, never uploaded."""
    pipes = {str(f) for f in member.output if (getattr(f, "flags", {}) or {}).get("pipe")}
    for item, f in zip(doc["output"]["items"], member.output, strict=True):
        if str(f) in pipes:
            item["pipe"] = True
            item["upload"] = False


def external_inputs(spec: dict) -> list[dict]:
    """The input items of a spec the job must stage in (a group's: not made inside)."""
    if spec["kind"] != GROUP_KIND:
        return spec["input"]["items"]
    items = [i for m in spec["members"] for i in m["input"]["items"] if not i.get("from_group")]
    return list({i["path"]: i for i in items}.values())


def home_items(spec: dict, section: str) -> list[dict]:
    """The items of one section (output, log) that come home after the job."""
    docs = spec["members"] if spec["kind"] == GROUP_KIND else [spec]
    return [i for d in docs for i in d[section]["items"] if i.get("upload", True)]


def benchmarks(spec: dict) -> list[dict]:
    docs = spec["members"] if spec["kind"] == GROUP_KIND else [spec]
    return [d["benchmark"] for d in docs if d.get("benchmark")]


def failed_member(spec: dict, lines: list[str]) -> str | None:
    """The member rule whose runtime line in ``lines`` (a log tail) says FAILED."""
    for line in reversed(lines):
        for doc in spec.get("members", ()):
            if f"knot: rule {doc['rule']}, jobid {doc['jobid']}: FAILED" in line:
                return doc["rule"]
    return None


def check_sequential(job: GroupJob) -> None:
    """knot runs a group's members one at a time, but for those a pipe joins; a service()
    output needs its readers running beside a server that outlives them, so it is refused."""
    for member in members(job):
        for f in member.output:
            if (getattr(f, "flags", {}) or {}).get("service"):
                raise group_error(
                    str(job.groupid),
                    ", ".join(member_rules(job)),
                    f"rule '{member.rule.name}' writes service() output {f}, which needs its "
                    "readers to run beside it, and knot runs those members one at a time",
                    f"write {f} as a plain (or temp()) file",
                )


def group_error(groupid: str, rules: str, why: str, fix: str) -> RuleError:
    """Why a group cannot run as one Batch job, and what to do."""
    return RuleError(
        f"Group '{groupid}' (rules {rules}) cannot run as one AWS Batch job: {why}. knot runs "
        f"a group in one container: {fix}, or remove 'group:' from one of these rules."
    )
