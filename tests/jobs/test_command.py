"""A shell rule's command for one job (jobs/command.py), on rules of a real Snakefile that
imports them from a module, loaded (not run) with Snakemake's API."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.jobs.command import job_command, reads_job_names
from tests.conftest import fake_job

MODULE = """
rule fstr:
    output: txt="out/{name}.txt"
    params: greeting="hello"
    shell: f"echo {params.greeting} > {output.txt}; cat {{input}}"

rule plain:
    output: "plain.txt"
    shell: "echo {SCALE} > {output}"

rule broken:
    output: "broken.txt"
    shell: f"echo {output.missing}"

rule banner:
    output: "banner.txt"
    shell: "head -n 1 " + workflow.source_path("data/t.txt") + " > {output}"
"""
MAIN = """
SCALE = 3
module m:
    snakefile: "../mod/Snakefile"
use rule * from m as m_*
"""


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    root = tmp_path_factory.mktemp("command")
    (root / "mod").mkdir()
    (root / "wf").mkdir()
    (root / "mod" / "Snakefile").write_text(textwrap.dedent(MODULE))
    (root / "mod" / "data").mkdir()
    (root / "mod" / "data" / "t.txt").write_text("t\n")
    (root / "wf" / "Snakefile").write_text(textwrap.dedent(MAIN))
    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            return api.workflow(
                ResourceSettings(), snakefile=Path(root / "wf" / "Snakefile"), workdir=root / "wf"
            )._workflow
    finally:
        os.chdir(cwd)


def job_of(workflow, name: str, **files):
    job = fake_job(rule=name, **files)
    job.rule = workflow.get_rule(name)
    return job


def test_an_f_string_of_the_job_s_names_is_evaluated_per_job(workflow):
    rule = workflow.get_rule("m_fstr")
    assert "RuleItemProxy" in rule.shellcmd  # what Snakemake read from the Snakefile
    job = job_of(
        workflow,
        "m_fstr",
        output={"txt": "out/a.txt"},
        params={"greeting": "hello"},
        wildcards={"name": "a"},
    )
    # Braces doubled in the f-string stay for shell() to format, as on the host.
    assert job_command(job) == "echo hello > out/a.txt; cat {input}"


def test_a_command_without_the_job_s_names_is_the_rule_s(workflow):
    assert not reads_job_names(workflow.get_rule("m_plain").run_func.__code__)
    job = job_of(workflow, "m_plain", output=["plain.txt"])
    assert job_command(job) == "echo {SCALE} > {output}"


def test_the_snakefile_s_globals_are_left_as_they_were(workflow):
    rule = workflow.get_rule("m_fstr")
    shell = rule.run_func.__globals__["shell"]
    job_command(job_of(workflow, "m_fstr", output={"txt": "x"}, params={"greeting": "g"}))
    assert rule.run_func.__globals__["shell"] is shell


def test_an_expression_that_fails_names_the_rule_and_job(workflow):
    job = job_of(workflow, "m_broken", output=["broken.txt"])
    with pytest.raises(RuleError, match=r"Rule 'm_broken'.*job 7.*AttributeError"):
        job_command(job)


def test_a_source_path_written_into_the_command_names_the_file_where_the_job_has_it(
    workflow, monkeypatch
):
    from snakemake_executor_knot.image.sources import named_sources
    from snakemake_executor_knot.jobs.sourcepaths import cached_paths

    rule = workflow.get_rule("m_banner")
    table = Path(workflow.basedir).parent / "mod" / "data" / "t.txt"
    assert "snakemake-runtime-cache" in rule.shellcmd  # Snakemake's copy, this run only
    assert cached_paths(rule.shellcmd, workflow) == [str(table)]
    monkeypatch.chdir(workflow.basedir)
    job = job_of(workflow, "m_banner", output=["banner.txt"])
    assert job_command(job) == f"head -n 1 .knot-external{table} > {{output}}"
    assert named_sources([job]) == {str(table)}


def test_a_param_snakemake_evaluated_to_its_cache_copy_names_the_file(workflow, monkeypatch):
    """Snakemake's evaluated params are plain strings (the source_path() flag is gone):
    one naming its cache of this run names the file where the job has it."""
    from snakemake_executor_knot.image.sources import named_sources
    from snakemake_executor_knot.jobs.spec import build_spec

    table = Path(workflow.basedir).parent / "mod" / "data" / "t.txt"
    copy = f"{workflow.sourcecache.runtime_cache_path}/file{table}"
    monkeypatch.chdir(workflow.basedir)
    job = job_of(workflow, "m_plain", output=["plain.txt"], params={"source": copy})
    spec = build_spec(job, "shell", lambda path: f"s3://b/{path}")
    assert spec["params"]["items"] == [f".knot-external{table}"]
    assert named_sources([job]) == {str(table)}
