"""Group jobs (``group:``, ``--groups``, ``--group-components``): every member job of one
Snakemake GroupJob runs in ONE Batch job, one after another in the group's topological
order, in one image that holds the code of each member rule (pure: no AWS call here).

Which files travel, decided once here and followed by the host and the runtime:
- in: an input made by an earlier member is already on the job's disk and is not
  downloaded (``"from_group": true``); every other input is staged in as for a single job;
- out: every member output is uploaded (and, in local mode, fetched home) EXCEPT a
  ``temp()`` (or ``nodelocal``) output that no job outside the group still needs and that
  is no target of the run: exactly the outputs Snakemake's ``GroupJob.postprocess`` lets be
  missing (``ignore_missing_output``). Those stay on the job's disk (``"upload": false``).
  Every other output comes home, because Snakemake checks each member's outputs after the
  group ends; logs and benchmarks always come home.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace

from ..compute.resources import BatchResources, job_batch_resources
from ..compute.routing import check_fits
from ..config.settings import KnotConfig
from ..errors import RuleError
from ..image.dockerfile import ImageSpec
from ..runtime.contract import GROUP_KIND, KNOT_ROOT, MEMBERS_DIR, SPEC_VERSION
from .spec import UriFor, build_spec
from .values import encode_value

_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==")


def is_group(job) -> bool:
    return bool(getattr(job, "is_group", lambda: False)())


def members(job) -> list:
    """The member jobs in the order they run: Snakemake's topological layers, each layer
    by jobid so the order (and the spec's hash) is stable."""
    return [m for layer in job.toposorted for m in sorted(layer, key=lambda m: m.jobid)]


def jobs_of(job) -> tuple:
    """The Snakemake jobs a job stands for: a group's members (in no set order), or itself."""
    return tuple(job.jobs) if is_group(job) else (job,)


def member_rules(job) -> list[str]:
    return sorted({m.rule.name for m in job.jobs})


def plan_name(job) -> str:
    """The name a group's plan, image, spec object and ``knot:rule`` tag go by; it cannot
    clash with a rule's (rule names are identifiers, this holds ':')."""
    groupid = _UNSAFE.sub("_", str(job.groupid)).strip("_") or "group"
    return f"group:{groupid}:{'+'.join(member_rules(job))}"


def job_key(job) -> int:
    """An integer id for a Batch job name and the run record: a group's first member's
    jobid (Snakemake's own group jobid is a UUID)."""
    return members(job)[0].jobid if is_group(job) else job.jobid


def job_label(job) -> str:
    return plan_name(job) if is_group(job) else job.rule.name


def staying_outputs(job) -> set[str]:
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


def build_group_spec(job, kinds: dict[str, str], uri_for: UriFor, config: dict) -> dict:
    """One document for the whole group: its members' documents in run order, the config
    once. ``kinds`` maps each member rule to run, shell or script."""
    stay = staying_outputs(job)
    made: set[str] = set()
    docs = []
    for member in members(job):
        doc = build_spec(member, kinds[member.rule.name], uri_for, config, with_config=False)
        for item in doc["input"]["items"]:
            if item["path"] in made:
                item["from_group"] = True
        for item in doc["output"]["items"]:
            if item["path"] in stay:
                item["upload"] = False
        made.update(item["path"] for item in doc["output"]["items"])
        docs.append({k: v for k, v in doc.items() if k != "version"})
    return {
        "version": SPEC_VERSION,
        "kind": GROUP_KIND,
        "rule": plan_name(job),
        "jobid": job_key(job),
        "group": str(job.groupid),
        "config": encode_value(config, rule=plan_name(job), what="config"),
        "members": docs,
    }


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


def check_sequential(job) -> None:
    """knot runs a group's members one at a time; a pipe() or service() output needs its
    reader running at the same time, so such a group would hang."""
    for member in members(job):
        for f in member.output:
            flags = getattr(f, "flags", {}) or {}
            if flags.get("pipe") or flags.get("service"):
                kind = "pipe" if flags.get("pipe") else "service"
                raise _incompatible(
                    str(job.groupid),
                    ", ".join(member_rules(job)),
                    f"rule '{member.rule.name}' writes {kind}() output {f}, which needs its "
                    "reader to run at the same time, and knot runs members one at a time",
                    f"write {f} as a plain (or temp()) file",
                )


# ---- one Batch size, one image


def group_resources(job, config: KnotConfig) -> BatchResources:
    """Members run one at a time, so the job needs the largest member's vCPUs, memory and
    GPUs, and the sum of their time limits (none if any member has none). Each member's
    own values are checked as a single job's would be, and the largest of each dimension
    against the group's compute class (see ``group_class``)."""
    sizes = [job_batch_resources(member, config) for member in job.jobs]
    timeouts = [s.timeout_s for s in sizes]
    combined = BatchResources(
        vcpus=max(s.vcpus for s in sizes),
        memory_mib=max(s.memory_mib for s in sizes),
        gpus=max(s.gpus for s in sizes),
        timeout_s=None if None in timeouts else sum(timeouts),
        compute_class=group_class(job, sizes),
    )
    label = f"group '{job.groupid}'"
    check_fits(label, combined, None, config.compute_class(combined.compute_class))
    return combined


def group_class(job, sizes: list[BatchResources]) -> str:
    """One Batch job runs on one instance: the class of the group's GPU members, where the
    CPU members ride along, or else the one class all members share."""
    with_gpus = {s.compute_class for s in sizes if s.gpus > 0}
    classes = with_gpus or {s.compute_class for s in sizes}
    if len(classes) == 1:
        return classes.pop()
    raise _incompatible(
        str(job.groupid),
        ", ".join(member_rules(job)),
        f"its rules run in different compute classes ({', '.join(sorted(classes))}), and "
        "one Batch job runs on one instance",
        "give the grouped rules the same knot_class",
    )


@dataclass(frozen=True)
class Member:
    """What the group check needs of a member rule's plan."""

    rule: str
    image: ImageSpec | None  # None: the rule names a prebuilt image (knot_image)
    given_image: str | None = None


def group_image(name: str, groupid: str, parts: list[Member]) -> ImageSpec:
    """One image for the group: the members' shared base and platform, the union of their
    requirements, and each member's files under ``MEMBERS_DIR/<rule>/``. A RuleError when
    they cannot share one image, before anything is created."""
    rules = ", ".join(sorted(p.rule for p in parts))
    given = [p for p in parts if p.image is None]
    if given:
        raise _incompatible(
            groupid,
            rules,
            f"rule '{given[0].rule}' names its own prebuilt image (knot_image="
            f"{given[0].given_image}), which holds no other rule's code",
            "drop knot_image from the grouped rules, or take that rule out of the group",
        )
    specs = [p.image for p in parts]
    _same(
        groupid,
        rules,
        specs,
        "base_image",
        "container: image",
        "give every rule of the group the same container: image (or none)",
    )
    _same(groupid, rules, specs, "platform", "platform", "use one platform")
    _same(groupid, rules, specs, "locked", "knot.lock coverage", "run 'knot lock' again")
    requirements = _merged_requirements(groupid, rules, specs)
    files = {_relocated(spec.rule, path): data for spec in specs for path, data in spec.files}
    first = specs[0]
    return replace(
        first,
        rule=name,
        requirements=requirements,
        files=files,
        require_hashes=all(s.require_hashes for s in specs),
    )


def _relocated(rule: str, path: str) -> str:
    return posixpath.join(MEMBERS_DIR, rule, posixpath.relpath(path, KNOT_ROOT))


def _same(groupid: str, rules: str, specs: list[ImageSpec], field: str, what: str, fix: str):
    values = {}
    for spec in specs:
        values.setdefault(getattr(spec, field), spec.rule)
    if len(values) > 1:
        shown = "; ".join(f"rule '{rule}': {value or 'none'}" for value, rule in values.items())
        raise _incompatible(groupid, rules, f"its rules ask for different {what}s ({shown})", fix)


def _merged_requirements(groupid: str, rules: str, specs: list[ImageSpec]) -> tuple[str, ...]:
    pins: dict[str, tuple[str, str]] = {}
    for spec in specs:
        for line in spec.requirements:
            found = _PIN.match(line)
            if not found:
                continue
            name = found.group(1).lower().replace("_", "-")
            seen = pins.setdefault(name, (line.strip(), spec.rule))
            if seen[0].split(";")[0] != line.strip().split(";")[0]:
                raise _incompatible(
                    groupid,
                    rules,
                    f"rule '{seen[1]}' needs {seen[0]} but rule '{spec.rule}' needs {line.strip()}",
                    "pin one version for both (knot_packages), or split the group",
                )
    return tuple(sorted({line for spec in specs for line in spec.requirements}))


def _incompatible(groupid: str, rules: str, why: str, fix: str) -> RuleError:
    return RuleError(
        f"Group '{groupid}' (rules {rules}) cannot run as one AWS Batch job: {why}. knot runs "
        f"a group in one container: {fix}, or remove 'group:' from one of these rules."
    )
