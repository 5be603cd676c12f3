"""Everything decided per rule before the first job is submitted: the rule's kind and
source, its requirements, its image and its job definition.

Checks run for every rule that will run before any AWS resource is created, so that bad
input fails fast and costs nothing. Images for different rules are built in parallel.
"""

from __future__ import annotations

import functools
import logging
import os
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from snakemake.common.tbdstring import TBDString

from ..compute.platform import platform_for
from ..compute.resources import job_batch_resources, planned_resources
from ..config.settings import KnotConfig, resolve_base_image
from ..image.apt import check_no_container, parse_apt
from ..image.base import BaseImage
from ..image.conda import CondaLayer, check_pip, read_conda_file, runs_python
from ..image.container import check_group_containers, job_container, per_job_container
from ..image.dockerfile import ImageSpec
from ..image.group import Member, group_image
from ..image.requirements import find_requirements, parse_packages
from ..jobs.group import check_sequential, is_group, jobs_of, member_rules, plan_name
from ..jobs.spec import value_modules
from ..lock.conda import conda_lock_path, file_hash, locked_layer, runs_in_locked_python
from ..lock.drift import follow_lock
from ..lock.format import Lock
from ..lock.workflow import (
    lock_path,
    locked_lines,
    locked_rules,
    python_source,
    static_packages,
    static_values,
)
from ..rules.conda import conda_enabled, conda_file
from ..rules.languages import check_notebook, check_script_image, is_python_script
from ..rules.secrets import config_secret, config_secret_error, param_secret, param_secret_error
from ..rules.source import RuleSource, check_supported, rule_source, script_image_path
from ..runtime.contract import GROUP_KIND, RULE_DIR

if TYPE_CHECKING:
    from snakemake.jobs import GroupJob, Job
    from snakemake.workflow import Workflow

    from ..jobs.group import AnyJob

log = logging.getLogger("knot")

BaseReference = Callable[[BaseImage], str]


@dataclass
class RulePlan:
    """What knot needs to submit jobs of one rule."""

    source: RuleSource
    image: ImageSpec | None  # None when the rule names its own image (knot_image)
    image_uri: str | None = None
    job_definition_arn: str | None = None

    @property
    def name(self) -> str:
        return self.source.rule

    @property
    def provisioned(self) -> tuple[str, str]:
        """The image URI and the job definition ARN, which preparation sets before any job
        of the rule is submitted."""
        if not (self.image_uri and self.job_definition_arn):
            raise AssertionError(f"rule {self.name} was submitted before it was provisioned")
        return self.image_uri, self.job_definition_arn


def remote_rules(jobs: Iterable[AnyJob]) -> dict[str, Job]:
    """The first job of each plan knot will run (local rules stay with Snakemake), by
    ``plan_key``; a group job counts with each of its members, by rule."""
    rules: dict[str, Job] = {}
    for job in jobs:
        if job.is_local:
            continue
        for member in jobs_of(job):
            rules.setdefault(member.rule.name if is_group(job) else plan_key(member), member)
    return rules


def plan_key(job: AnyJob) -> str:
    """The plan a job runs with: its rule's, or a group's; for a rule whose container
    depends on the job (wildcards, a function), one plan per distinct container."""
    if is_group(job):
        return plan_name(job)
    if not per_job_container(job.rule):
        return job.rule.name
    return f"{job.rule.name} {job_container(job)}"


def group_plan(job: GroupJob, plans: Mapping[str, RulePlan]) -> RulePlan:
    """The plan of a group job: one image for all its member rules (``image/group.py``
    refuses members that cannot share one)."""
    parts = [Member(name, plans[name].image, plans[name].image_uri) for name in member_rules(job)]
    check_sequential(job)
    check_group_containers(job)
    image = group_image(plan_name(job), str(job.groupid), parts)
    return RulePlan(source=RuleSource(rule=plan_name(job), kind=GROUP_KIND), image=image)


@dataclass(frozen=True)
class BuildTarget:
    """What every rule image of a run shares: the base (a FROM reference; with a lock, the
    locked digest), the platform of the compute environments, and knot.lock if followed."""

    base_image: str
    platform: str
    lock: Lock | None = None
    workdir_files: tuple[tuple[str, bytes], ...] = ()  # the workflow's sources (image/sources.py)


def build_target(
    workflow,
    jobs: Mapping[str, Job],
    config: KnotConfig,
    base_reference: BaseReference,
    sources: tuple[tuple[str, bytes], ...] = (),
) -> BuildTarget:
    """``jobs`` is one job per rule of this run (their evaluated knot_packages count);
    ``base_reference`` turns the locked base image into a FROM reference (needs Docker)."""
    # One image per rule serves every class, so all classes share one architecture.
    every_type = tuple(kind for klass in config.compute_classes for kind in klass.instance_types)
    platform = platform_for(every_type)
    base = resolve_base_image(config)

    def packages(rule) -> object:
        job = jobs.get(rule.name)
        return knot_resource(job, "knot_packages") if job else static_packages(rule)

    def values(rule) -> set[str]:
        job = jobs.get(rule.name)
        if job is None:
            return static_values(workflow.config)(rule)
        return value_modules(job, workflow.config, planned_resources(job)[1])

    lock = follow_lock(
        lock_path(workflow),
        lambda: locked_rules(workflow, packages, values, runs_in_locked_python(workflow)),
        platform=platform,
        base_name=base,
        locked=config.locked,
    )
    if lock is None:
        return BuildTarget(base, platform, workdir_files=sources)
    return BuildTarget(base_reference(lock.base_image), platform, lock, sources)


def plan_rule(
    workflow: Workflow,
    job: Job,
    config: KnotConfig,
    target: BuildTarget,
    say: Callable[[str], None] = log.warning,
) -> RulePlan:
    """``job`` is one job of the rule: resources given by --set-resources or a profile
    exist only as per-job values. ``say`` shows a notice to the user."""
    rule = job.rule
    check_supported(rule)
    source = rule_source(workflow, rule, config.public_globals)
    given = knot_resource(job, "knot_image")
    if rule.notebook is not None:
        text = source.files[script_image_path(str(rule.notebook))].decode()
        check_notebook(rule.name, str(rule.notebook), text)
    elif source.script_path is not None:
        image = given or source.container or config.base_image
        check_script_image(rule.name, source.script_path, image)
    if given:
        return RulePlan(source=source, image=None, image_uri=str(given))
    layer = conda_layer(workflow, rule, target, locked=config.locked)
    if layer is None:
        return RulePlan(source=source, image=image_spec(source, job, target, workflow.config))
    notice = check_conda_layer(rule, layer)
    if notice:
        say(notice)
    # A Python script the environment's python runs imports the environment's packages,
    # not knot's: they are no requirements of knot's venv.
    own_python = runs_python(layer) and is_python_script(rule)
    image = image_spec(source, job, target, workflow.config, script_imports=not own_python)
    return RulePlan(source=source, image=replace(image, conda=layer))


def check_conda_layer(rule, layer: CondaLayer) -> str | None:
    """Before any build: a pip: section needs pip. A Python script or wrapper without a
    python in its environment runs with knot's Python, as Snakemake runs it with its own:
    the notice that says so, else None."""
    check_pip(layer, rule.name)
    if runs_python(layer) or not is_python_script(rule):
        return None
    kind = "wrapper" if rule.wrapper is not None else "script"
    return (
        f"knot: rule {rule.name}: its conda environment '{layer.file}' has no python, so its "
        f"Python {kind} runs with knot's Python inside the activated environment, as "
        "Snakemake runs it with its own; add python to the environment to run it with the "
        "environment's packages."
    )


def conda_layer(
    workflow: Workflow, rule, target: BuildTarget, *, locked: bool = False
) -> CondaLayer | None:
    """The rule's conda environment for the target platform, from knot.conda.lock or
    solved, when the run uses conda (``--software-deployment-method conda``) and the rule
    names one."""
    if not conda_enabled(workflow):
        return None
    found = conda_file(workflow, rule)
    if found is None:
        return None
    env = read_conda_file(rule.name, *found)
    # Rules naming one file share one solve (and so one layer).
    key = (env.path, file_hash(found[1]), target.platform, locked)
    if key not in _LAYERS:
        path = conda_lock_path(workflow)
        _LAYERS[key] = locked_layer(path, env, found[1], target.platform, locked=locked)
    return _LAYERS[key]


_LAYERS: dict[tuple, CondaLayer] = {}


def image_spec(
    source: RuleSource, job: Job, target: BuildTarget, config: dict, script_imports: bool = True
) -> ImageSpec:
    """The rule's image: from knot.lock's lines when the run follows a lock, else from
    the rule's imports pinned to the versions installed here (without ``script_imports``,
    its params' and config's only: the conda environment's python runs the script)."""
    container = job_container(job)
    apt_value = knot_resource(job, "knot_apt")
    apt = parse_apt(apt_value, source.rule) if apt_value else ()
    check_no_container(apt, container, source.rule)
    image = functools.partial(
        ImageSpec,
        rule=source.rule,
        base_image=container or target.base_image,
        files=tuple(sorted(source.files.items())),
        from_container=bool(container),
        interpreter_image=target.base_image if container else None,
        apt=apt,
        workdir_files=target.workdir_files,
        platform=target.platform,
    )
    if target.lock is not None and source.rule in target.lock.rules:
        lines, hashed = locked_lines(target.lock, source.rule)
        # knot_apt's closure as 'knot lock' pinned it, when it did.
        pinned = target.lock.rules[source.rule].apt
        return image(requirements=lines, locked=True, require_hashes=hashed, apt=pinned or apt)
    packages = knot_resource(job, "knot_packages")
    extra = parse_packages(packages, rule=source.rule) if packages else []
    # A numpy param needs numpy in the image even when the code never imports it.
    modules = value_modules(job, config, planned_resources(job)[1])
    loads = "".join(f"import {name}\n" for name in sorted(modules))
    code = ((python_source(source) if script_imports else None) or "") + loads
    requirements = (
        find_requirements(
            code,
            rule=source.rule,
            extra=extra,
            local_modules=_shown_paths(source.local_sources),
            local_names=source.local_names,
        )
        if code
        else list(extra)
    )
    return image(requirements=tuple(requirements))


def _shown_paths(sources: dict[str, str]) -> dict[str, str]:
    """Local modules by their path in the workflow's folder, as errors show them."""
    return {posixpath.relpath(path, RULE_DIR): text for path, text in sources.items()}


def knot_resource(job: Job, name: str):
    """A knot resource of the rule, from the Snakefile, --set-resources, --default-resources
    or a profile. It shapes the rule's image, planned before any job is ready: a constant
    is read as Snakemake expands it, and one given as a function is evaluated then, alone
    (the job's other resources wait for Snakemake, compute/resources.py)."""
    declared = getattr(job.rule, "resources", None)
    try:
        if declared is None:  # no Snakemake rule behind it: the job's resources as they are
            value = job.resources.get(name)
        else:
            value = _planned_value(job, declared.get(name))
    except (FileNotFoundError, OSError):  # a callable that needs inputs not made yet
        return None
    return value if isinstance(value, str) and value else None


def _planned_value(job: Job, resource):
    if resource is None or not resource.is_evaluable():
        return None if resource is None else resource.value
    return resource.evaluate(
        job.wildcards, input=job.input, attempt=job.attempt, rulename=job.rule.name
    ).value


def check_job_resources(jobs: Iterable[Job], config: KnotConfig) -> None:
    """Per-job resources (threads, mem_mb, gpu, runtime) are checked before anything is
    created, as far as they are known then: one given as a function is Snakemake's to
    evaluate just before the job runs, and is checked at submission."""
    for job in jobs:
        if job.is_local:
            continue
        threads, resources = planned_resources(job)
        # Snakemake leaves '<TBD>' for a value computed from inputs that do not exist yet.
        resources = {k: v for k, v in resources.items() if not isinstance(v, TBDString)}
        job_batch_resources(job, config, resources, threads)


def check_param_secrets(jobs: Iterable[Job], config: KnotConfig) -> None:
    """Params travel in job specs, which every job of the stack can read: one that looks
    like a secret is refused (rules/secrets.py). A param computed from inputs not made yet
    is checked when its job's spec is built."""
    for job in jobs:
        if job.is_local:
            continue
        try:
            params = job.params
        except (FileNotFoundError, OSError):
            continue
        found = param_secret(params, config.public_globals, os.environ)
        if found:
            raise param_secret_error(job.rule.name, found)


def check_config_secrets(workflow_config: object, rule: str, config: KnotConfig) -> None:
    """The config travels to every job through S3: an entry that looks like a secret is
    refused, naming ``rule``, the first rule whose jobs would carry it."""
    found = config_secret(workflow_config, config.public_globals, os.environ)
    if found:
        raise config_secret_error(rule, found)
