"""A script rule's language, as Snakemake decides it, and the image its interpreter needs."""

from __future__ import annotations

from types import SimpleNamespace

import nbformat
import pytest
import snakemake.api  # noqa: F401  (loads snakemake.workflow, whose import order this needs)

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.rules import languages
from snakemake_executor_knot.rules.languages import (
    check_notebook,
    check_script_image,
    notebook_imports,
    script_language,
)
from snakemake_executor_knot.rules.source import check_supported

from .test_rules import unsupported_workflow  # noqa: F401  (a fixture)


@pytest.mark.parametrize(
    "path, language",
    [
        ("s/fit.py", "python"),
        ("s/plot.R", "r"),
        ("s/report.Rmd", "rmarkdown"),
        ("s/model.jl", "julia"),
        ("s/tool.rs", "rust"),
        ("s/run.sh", "bash"),
    ],
)
def test_language_by_file_name_as_snakemake_tells(path, language):
    assert script_language("fit", path) == language


@pytest.mark.parametrize("path", ["s/run.xsh", "s/model.hy", "s/plot.r", "s/notes.txt"])
def test_other_scripts_are_refused_naming_rule_file_and_the_kinds_knot_runs(path):
    with pytest.raises(RuleError) as caught:
        script_language("fit", path)
    message = str(caught.value)
    assert message.startswith(f"Rule 'fit' runs the script {path}")
    assert "R (.R)" in message and "Bash (.sh)" in message and "localrules: fit" in message


def test_a_notebook_named_as_a_script_says_use_notebook():
    with pytest.raises(RuleError, match=r"Rule 'fit' names the notebook n\.ipynb.*notebook:"):
        script_language("fit", "n.ipynb")


@pytest.mark.parametrize(
    "path, needs",
    [
        ("s/plot.R", "Rscript"),
        ("s/report.Rmd", "rmarkdown package, and pandoc"),
        ("s/model.jl", "julia"),
        ("s/tool.rs", "rust-script"),
    ],
)
def test_an_interpreter_knots_base_image_lacks_needs_a_named_image(path, needs):
    with pytest.raises(RuleError) as caught:
        check_script_image("fit", path, None)
    message = str(caught.value)
    assert message.startswith("Rule 'fit' runs ") and f"({path})" in message
    assert needs in message and "container:" in message and "localrules: fit" in message
    check_script_image("fit", path, "my-r-image")  # an image named for it: trusted


@pytest.mark.parametrize("path", ["s/fit.py", "s/run.sh"])
def test_python_and_bash_run_in_knots_base_image(path):
    check_script_image("fit", path, None)


@pytest.mark.parametrize("rule", ["r_script", "rmd_script", "julia_script", "rust_script"])
def test_script_rules_of_every_language_are_supported(unsupported_workflow, rule):  # noqa: F811
    check_supported(unsupported_workflow.get_rule(rule))


def test_a_template_rule_is_snakemakes_own_local_job(unsupported_workflow):  # noqa: F811
    check_supported(unsupported_workflow.get_rule("template_rule"))


def test_a_template_rule_in_a_group_is_refused_saying_what_to_do():
    rule = SimpleNamespace(name="render", template_engine="jinja2", group="g", script=None)
    with pytest.raises(RuleError) as caught:
        check_supported(rule)
    message = str(caught.value)
    assert message.startswith("Rule 'render' uses 'template_engine:' and is in group 'g'")
    assert "Take the rule out of the group" in message


def _notebook(language: str = "python") -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nimport numpy as np")]
    notebook.metadata = {"language_info": {"name": language}}
    return nbformat.writes(notebook)


def test_a_python_notebook_with_the_tools_here_passes(monkeypatch):
    monkeypatch.setattr(languages, "_installed", lambda name: True)
    check_notebook("nb", "n.py.ipynb", _notebook())


def test_a_notebooks_image_gets_its_imports_and_nbconvert_not_its_magics():
    assert (
        notebook_imports(_notebook()) == "import numpy as np\nimport nbconvert\nimport ipykernel\n"
    )


def test_a_notebook_without_nbconvert_here_says_what_to_install(monkeypatch):
    monkeypatch.setattr(languages, "_installed", lambda name: name != "nbconvert")
    with pytest.raises(
        RuleError, match=r"Rule 'nb' runs the notebook n\.ipynb.*pip install nbconvert'"
    ):
        check_notebook("nb", "n.ipynb", _notebook())


def test_an_r_notebook_is_refused():
    with pytest.raises(
        RuleError, match=r"Rule 'nb' runs the r notebook n\.ipynb; knot runs Python"
    ):
        check_notebook("nb", "n.ipynb", _notebook("R"))


def test_a_notebook_rule_is_supported(unsupported_workflow):  # noqa: F811
    check_supported(unsupported_workflow.get_rule("notebook_rule"))
