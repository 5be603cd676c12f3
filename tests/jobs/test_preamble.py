"""A non-Python script's text for one job, written by Snakemake's own classes with the paths
the job sees; and the Bash one run for real through the runtime, as the container runs it."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import nbformat
import pytest
import snakemake.api  # noqa: F401  (loads snakemake.workflow, whose import order this needs)
from snakemake.sourcecache import LocalSourceFile, SourceCache

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.jobs.spec import build_spec
from snakemake_executor_knot.runtime.namespace import Namespace
from snakemake_executor_knot.runtime.preamble import (
    NOTEBOOK_PREAMBLE,
    SCRIPTS_DIR,
    run_foreign_script,
)

from ..conftest import fake_job

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "scripts"


def _job(tmp_path: Path, script: str | None, folder: Path = WORKFLOW, **given):
    values = {
        "rule": "stats",
        "input": {"table": "results/data/a.csv"},
        "output": {"info": "results/bash/a.txt"},
        "log": ["logs/a.log"],
        "params": {"label": "rows", "words": ["one", "two"]},
        "wildcards": {"sample": "a"},
        "resources": {"mem_mb": 300, "tmpdir": "/tmp/host-only"},
        "threads": 2,
        "config": {"greeting": "hello"},
        **given,
    }
    job = fake_job(script=script, **values)
    job.rule.basedir = LocalSourceFile(str(folder))
    job.rule.workflow.sourcecache = SourceCache(tmp_path / "cache")
    return job


def _script(job, **kwargs) -> dict:
    return build_spec(job, "script", lambda path: f"s3://b/{path}", **kwargs)["script"]


def test_python_scripts_keep_only_their_path(tmp_path):
    assert _script(_job(tmp_path, "scripts/plot.py")) == {"path": "scripts/plot.py"}


def test_r_preamble_holds_the_jobs_values_and_the_image_scriptdir(tmp_path):
    script = _script(_job(tmp_path, "scripts/stats.R"))
    assert (script["language"], script["filename"]) == ("r", "stats.R")
    assert script["command"] == "Rscript --vanilla {fname:q}"
    text = script["text"]
    preamble, source = text.split("######## snakemake preamble end #########\n")
    assert "input = list('results/data/a.csv', \"table\" = 'results/data/a.csv')," in preamble
    assert "params = list('rows', c('one', 'two'), \"label\" = 'rows'" in preamble
    assert "wildcards = list('a', \"sample\" = 'a')," in preamble
    assert "threads = 2," in preamble
    assert "config = list(\"greeting\" = 'hello')," in preamble
    assert "rule = 'stats'," in preamble
    assert "scriptdir = '/opt/knot/rule/scripts'," in preamble
    assert "tmpdir" not in preamble and "host-only" not in preamble
    assert source == (WORKFLOW / "scripts" / "stats.R").read_text()


def test_a_group_members_scriptdir_is_its_own_folder(tmp_path):
    script = _script(_job(tmp_path, "scripts/stats.R"), rule_dir="/opt/knot/members/x/rule")
    assert "scriptdir = '/opt/knot/members/x/rule/scripts'," in script["text"]


def test_rmarkdown_gets_the_preamble_after_its_header_and_a_relative_output(tmp_path):
    job = _job(tmp_path, "scripts/report.Rmd", output=["results/report.md"])
    script = _script(job)
    assert script["language"] == "rmarkdown"
    assert script["text"].startswith('---\ntitle: "Tables"\noutput: md_document\n---\n')
    assert "snakemake <- Snakemake(" in script["text"]
    assert "rmarkdown::render(" in script["command"]
    # Snakemake makes these absolute on its host; the job puts them under its own folder.
    assert script["arguments"] == {
        "values": {"out": "results/report.md", "workdir": "."},
        "relative": ["out", "workdir"],
    }


def test_rmarkdown_without_a_header_is_a_rule_error(tmp_path):
    (tmp_path / "bad.Rmd").write_text("no header here\n")
    job = _job(tmp_path, "bad.Rmd", folder=tmp_path, output=["report.md"])
    with pytest.raises(RuleError, match=r"Rule 'stats'.*bad\.Rmd.*'---'"):
        _script(job)


def test_julia_and_rust_preambles_come_from_snakemake(tmp_path):
    (tmp_path / "s.jl").write_text('println(snakemake.input["table"])\n')
    (tmp_path / "s.rs").write_text(
        '//! ```cargo\n//! [dependencies]\n//! ```\nfn main() { println!("{}", snakemake.rule); }\n'
    )
    julia = _script(_job(tmp_path, "s.jl", folder=tmp_path))
    assert julia["command"] == "julia {fname:q}"
    assert '"table" => "results/data/a.csv"' in julia["text"]
    assert julia["text"].endswith('println(snakemake.input["table"])\n')
    rust = _script(_job(tmp_path, "s.rs", folder=tmp_path))
    assert rust["command"].startswith("rust-script -d ")
    # The cargo manifest goes first, then Snakemake's preamble, then the code.
    assert rust["text"].startswith("//! ```cargo\n//! [dependencies]\n//! ```\n")
    assert "results/data/a.csv" in rust["text"]
    assert rust["text"].endswith('fn main() { println!("{}", snakemake.rule); }\n')


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_script_runs_in_the_runtime_with_snakemakes_arrays(tmp_path, monkeypatch):
    script = _script(_job(tmp_path, "scripts/info.sh"))
    assert script["command"] == "bash {fname:q}"
    work = tmp_path / "work"
    (work / "results" / "data").mkdir(parents=True)
    (work / "results" / "bash").mkdir()
    (work / "logs").mkdir()
    (work / "results" / "data" / "a.csv").write_text("x,y\n1,1\n2,4\n")
    monkeypatch.chdir(work)
    spec = build_spec(_job(tmp_path, "scripts/info.sh"), "script", lambda p: p)
    run_foreign_script(Namespace.from_spec(spec), script)
    assert (work / "results" / "bash" / "a.txt").read_text() == (
        "rule stats\nsample a\nrows 2\nwords one two\nthreads 2\nmem_mb 300\n"
        "greeting hello\nscriptdir scripts\noutput a.txt a.txt\n"
    )
    assert (work / "logs" / "a.log").read_text() == "bash done\n"
    assert os.listdir(work / SCRIPTS_DIR) == []  # the job's copy is gone, as Snakemake's


@pytest.mark.skipif(importlib.util.find_spec("nbconvert") is None, reason="needs nbconvert")
def test_notebook_runs_with_knots_preamble_cell_and_lands_where_its_log_says(tmp_path, monkeypatch):
    job = _job(
        tmp_path,
        None,
        output=["results/notebook/a.txt"],
        log={"notebook": "logs/a.ipynb"},
        params={"factor": 3},
    )
    job.rule.notebook = "notebooks/total.py.ipynb"
    script = _script(job)
    assert script["language"] == "jupyter_python"
    assert script["command"].startswith("jupyter-nbconvert --log-level ERROR --execute")
    assert script["arguments"] == {
        "values": {"fname_out": "logs/a.ipynb"},
        "relative": ["fname_out"],
    }
    first = nbformat.reads(script["text"], as_version=4)["cells"][0]
    assert first["source"] == NOTEBOOK_PREAMBLE
    assert first["metadata"]["tags"] == ["snakemake-job-properties"]  # Snakemake's tag
    work = tmp_path / "work"
    (work / "results" / "data").mkdir(parents=True)
    (work / "results" / "notebook").mkdir()
    (work / "logs").mkdir()
    (work / "results" / "data" / "a.csv").write_text("x,y\n1,1\n2,4\n3,9\n")
    monkeypatch.chdir(work)
    spec = build_spec(job, "script", lambda p: p) | {"config": {"greeting": "hello"}}
    run_foreign_script(Namespace.from_spec(spec), script)
    assert (work / "results" / "notebook" / "a.txt").read_text() == "stats a 14 42 2 hello\n"
    executed = nbformat.read(work / "logs" / "a.ipynb", as_version=4)
    assert executed["cells"][2]["outputs"][0]["text"] == "14\n"
    assert os.listdir(work / SCRIPTS_DIR) == []
