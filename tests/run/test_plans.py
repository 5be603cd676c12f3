"""Per-rule planning: knot's own resources come from the job's evaluated resources, so the
Snakefile, --set-resources, --default-resources and profiles all work."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from snakemake.common.tbdstring import TBDString

from snakemake_executor_knot.compute.resources import guessed_disk, planned_resources
from snakemake_executor_knot.config.settings import KnotConfig, with_classes
from snakemake_executor_knot.errors import ConfigError, RuleError
from snakemake_executor_knot.image.conda import CondaLayer, CondaPackage
from snakemake_executor_knot.rules.source import RuleSource, script_image_path
from snakemake_executor_knot.run.plans import (
    BuildTarget,
    build_target,
    check_conda_layer,
    check_job_resources,
    image_spec,
    knot_resource,
)

from ..conftest import FakeJob, fake_job

TARGET = BuildTarget("knot-base:py3.11", "linux/amd64")


def _job(**resources):
    return fake_job(resources=resources)


def test_knot_image_from_any_source_is_read_from_the_job():
    assert knot_resource(_job(knot_image="registry/img:1"), "knot_image") == "registry/img:1"


def test_absent_or_non_text_resources_are_none():
    assert knot_resource(_job(), "knot_image") is None
    assert knot_resource(_job(knot_packages=3), "knot_packages") is None


def test_a_script_the_environments_python_runs_adds_no_requirement_to_knots_venv():
    source = RuleSource(
        rule="fit",
        kind="script",
        script_path="scripts/fit.py",
        files={script_image_path("scripts/fit.py"): b"import knot_pymod\n"},
    )
    job = fake_job(params={"n": np.int64(1)})
    with pytest.raises(RuleError, match="knot_pymod"):  # not installed here
        image_spec(source, job, TARGET, {})
    spec = image_spec(source, job, TARGET, {}, script_imports=False)
    # The params still decode in knot's process first.
    assert spec.requirements == (f"numpy=={importlib.metadata.version('numpy')}",)


def test_a_numpy_param_puts_numpy_in_the_image_of_a_rule_that_never_imports_it():
    source = RuleSource(rule="fit", kind="shell", shell_command="echo {params.n}")
    job = fake_job(params={"n": np.int64(1), "where": Path("/tmp")})
    spec = image_spec(source, job, TARGET, {"when": datetime.date(2026, 1, 1)})
    assert spec.requirements == (f"numpy=={importlib.metadata.version('numpy')}",)
    plain = image_spec(source, fake_job(params={"n": 1}), TARGET, {})
    assert plain.requirements == ()


def test_an_unpicklable_config_value_stops_planning_naming_rule_and_config():
    source = RuleSource(rule="fit", kind="shell", shell_command="true")
    config = {"log": open(os.devnull)}  # noqa: SIM115 - a value that cannot be sent
    try:
        with pytest.raises(RuleError, match=r"Rule 'fit': config cannot be sent"):
            image_spec(source, fake_job(), TARGET, config)
    finally:
        config["log"].close()


GUESSES = """
rule guessed:
    output: "a.txt"
    shell: "touch {output}"

rule mine:
    output: "b.txt"
    resources: disk_mb=60000
    shell: "touch {output}"

rule mine_callable:
    output: "c.txt"
    resources: disk_mb=lambda wc: 70000
    shell: "touch {output}"
"""


@pytest.mark.parametrize(
    ("defaults", "guessed"),
    [(["mem_mb=1024"], {"guessed"}), (["disk_mb=80000"], set()), (None, set())],
    ids=["snakemakes-guess", "users-default", "no-defaults"],
)
def test_only_snakemakes_own_disk_guess_escapes_the_volume_check(tmp_path, defaults, guessed):
    """Plain --default-resources give every rule "twice the input, or 50 GB", which is no
    request; a disk size the user wrote, as a default or in the rule, is checked."""
    from snakemake.api import SnakemakeApi
    from snakemake.resources import Resources
    from snakemake.settings.types import OutputSettings, ResourceSettings

    (tmp_path / "Snakefile").write_text(GUESSES)
    parse = Resources.parser_factory(defaults="full", allow_expressions=True)
    settings = ResourceSettings(default_resources=None if defaults is None else parse(defaults))
    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            workflow = api.workflow(settings, snakefile=tmp_path / "Snakefile", workdir=tmp_path)
            rules = workflow._workflow.rules  # no public way to the parsed rules
            found = {rule.name for rule in rules if guessed_disk(SimpleNamespace(rule=rule))}
    finally:
        os.chdir(cwd)
    assert found == guessed


def test_classes_of_two_architectures_are_refused_before_anything_is_built():
    """A rule's one image must run in every class; the workflow is never looked at."""
    config = with_classes(KnotConfig(), "arm=m7g,c7g:ondemand")
    with pytest.raises(ConfigError, match=r"mix arm64 \(c7g, m7g\) and x86_64 \(optimal\)"):
        build_target(None, {}, config, lambda base: base.name)
    graviton = with_classes(KnotConfig(instance_types=("m7g",)), "big=r7g:500GB")
    assert build_target_platform(graviton) == "linux/arm64"


def build_target_platform(config) -> str:
    class NoLock:  # a workflow without a Snakefile next to it: no knot.lock to follow
        basedir, main_snakefile, rules = "/nonexistent", "/nonexistent/Snakefile", []

    return build_target(NoLock(), {}, config, lambda base: base.name).platform


def test_a_resource_computed_from_inputs_not_made_yet_waits_for_submission():
    """mem_mb=lambda wc, input: input.size_mb * 2 is '<TBD>' before its inputs exist."""
    later = fake_job(resources={"mem_mb": TBDString()})
    check_job_resources([later], KnotConfig())
    wrong = fake_job(resources={"mem_mb": "lots"})
    with pytest.raises(RuleError, match="resource 'mem_mb' must be a number"):
        check_job_resources([wrong], KnotConfig())


LAZY = """
def needs_its_input(wildcards, input, attempt):
    raise RuntimeError("a resource function was called before its job was ready")

rule lazy:
    output: "a.txt"
    threads: 4
    resources:
        mem_mb=needs_its_input,
        runtime=30,
        knot_apt=lambda wildcards: "jq",
    shell: "touch {output}"

rule threads_from_a_function:
    output: "b.txt"
    threads: lambda wildcards: 8
    resources: mem="3GB"
    shell: "touch {output}"
"""


@pytest.fixture(scope="module")
def lazy_workflow(tmp_path_factory):
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    root = tmp_path_factory.mktemp("lazy")
    (root / "Snakefile").write_text(LAZY)
    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            return api.workflow(ResourceSettings(), snakefile=root / "Snakefile", workdir=root)
    finally:
        os.chdir(cwd)


class PlanningJob(FakeJob):
    """What planning may read of a job: its rule, wildcards, input and attempt. Its
    evaluated threads and resources fail, as a resource function called too early would."""

    @property
    def resources(self):
        raise AssertionError("planning read the job's evaluated resources")

    @property
    def threads(self):
        raise AssertionError("planning read the job's evaluated threads")


def _planning_job(workflow, name: str) -> PlanningJob:
    rule = workflow._workflow.get_rule(name)  # no public way to the parsed rules
    evaluated = ("resources", "threads")
    known = {k: v for k, v in vars(fake_job(rule=name)).items() if k not in evaluated}
    return PlanningJob(**(known | {"rule": rule, "attempt": 1}))


def test_planning_calls_no_resource_function_of_the_workflow(lazy_workflow):
    """Snakemake evaluates a resource given as a function just before the job runs (it may
    read the input's size, or grow with attempt); planning reads only constants."""
    job = _planning_job(lazy_workflow, "lazy")
    threads, resources = planned_resources(job)
    assert threads == 4
    assert resources["runtime"] == 30 and "mem_mb" not in resources
    check_job_resources([job], KnotConfig())  # needs_its_input is not called
    # knot's own resources shape the image, so they are read while planning, alone.
    assert knot_resource(job, "knot_apt") == "jq"


def test_threads_given_by_a_function_count_as_one_until_the_job_is_ready(lazy_workflow):
    threads, resources = planned_resources(_planning_job(lazy_workflow, "threads_from_a_function"))
    assert threads == 1
    assert resources["mem_mb"] == 3000  # "3GB", expanded as Snakemake expands it


def _layer(*names: str, pip: tuple[str, ...] = ()) -> CondaLayer:
    packages = tuple(
        CondaPackage(f"file:///channel/linux-64/{name}-1.0-0.tar.bz2", "0" * 64) for name in names
    )
    return CondaLayer("envs/tool.yaml", "linux-64", packages, pip)


def _rule(**kinds) -> SimpleNamespace:
    return SimpleNamespace(
        **{"name": "fit", "notebook": None, "wrapper": None, "script": None} | kinds
    )


@pytest.mark.parametrize(
    ("rule", "names", "notice"),
    [
        (_rule(script="scripts/fit.py"), ("knot-hello",), "Python script"),
        (_rule(wrapper="v1/tool"), ("knot-hello",), "Python wrapper"),
        (_rule(script="scripts/fit.py"), ("knot-hello", "python"), None),
        (_rule(script="scripts/fit.R"), ("knot-hello",), None),
        (_rule(notebook="nb.py.ipynb"), ("knot-hello",), None),
        (_rule(), ("knot-hello",), None),  # a shell rule
    ],
)
def test_a_python_script_whose_environment_has_no_python_is_named_before_any_build(
    rule, names, notice
):
    message = check_conda_layer(rule, _layer(*names))
    if notice is None:
        assert message is None
    else:
        assert message is not None
        assert "rule fit" in message and "envs/tool.yaml" in message and notice in message
        assert "has no python" in message and "knot's Python" in message


def test_a_pip_section_without_pip_stops_planning():
    with pytest.raises(RuleError, match="Rule 'fit'.*'pip:' section.*Add 'pip'"):
        check_conda_layer(_rule(), _layer("python", pip=("six",)))
    check_conda_layer(_rule(), _layer("python", "pip", pip=("six",)))
