"""The language of a ``script:`` rule, and what its image must hold to run it.

Snakemake tells languages apart by the script's file name (``snakemake.script.get_language``)
and runs each with its own class; knot asks the same function and uses the same classes
(``jobs/preamble.py``), so the two cannot disagree on which file is which language.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import PurePath

import nbformat
from snakemake.script import (
    BashScript,
    JuliaScript,
    RMarkdown,
    RScript,
    RustScript,
    get_language,
)
from snakemake.sourcecache import LocalSourceFile

from ..errors import RuleError

# Snakemake's class for each language knot runs outside its own Python (Python scripts run
# in knot's runtime, runtime/script.py).
_CLASSES = {
    "r": RScript,
    "rmarkdown": RMarkdown,
    "julia": JuliaScript,
    "rust": RustScript,
    "bash": BashScript,
}
# What each language needs on the image's PATH (and, for R Markdown, in R), as Snakemake's
# execute_script calls it.
NEEDS = {
    "r": "Rscript",
    "rmarkdown": "Rscript with the rmarkdown package, and pandoc",
    "julia": "julia",
    "rust": "rust-script (and cargo)",
    "bash": "bash",
}
# Debian's packages that bring them, for the advice in errors.
_DEBIAN = {
    "r": "r-base-core",
    "rmarkdown": "r-base-core r-cran-rmarkdown pandoc",
}
_NAMES = {"r": "an R", "rmarkdown": "an R Markdown", "julia": "a Julia", "rust": "a Rust"}


def script_language(rule: str, path: str) -> str:
    """``python``, ``r``, ``rmarkdown``, ``julia``, ``rust`` or ``bash``, by the file name
    as Snakemake decides it; anything else is a RuleError naming the rule."""
    if path.endswith(".ipynb"):  # a notebook is a notebook: rule, not a script: one
        raise RuleError(
            f"Rule '{rule}' names the notebook {path} as a script:; use notebook: for it."
        )
    language = get_language(LocalSourceFile(path), "")
    if language == "python" or language in _CLASSES:
        return language
    suffix = PurePath(path).suffix or "no suffix"
    raise RuleError(
        f"Rule '{rule}' runs the script {path} ({suffix}), a kind knot does not run. knot "
        "runs Python (.py), R (.R), R Markdown (.Rmd), Julia (.jl), Rust (.rs) and Bash "
        f"(.sh) scripts. Rename or rewrite it, or run the rule here with 'localrules: {rule}'."
    )


def is_python_script(rule) -> bool:
    """A Python ``script:`` or ``wrapper:`` (a notebook runs in its own kernel)."""
    if rule.notebook is not None:
        return False
    if rule.wrapper is not None:
        return True
    return rule.script is not None and script_language(rule.name, str(rule.script)) == "python"


def script_class(language: str):
    """Snakemake's class that writes and runs a script of ``language`` (not Python)."""
    return _CLASSES[language]


def check_script_image(rule: str, path: str, image: str | None) -> None:
    """Before anything is built: a script whose interpreter knot's own Python base image
    cannot have needs an image that has it. ``image`` is the rule's container:, its
    knot_image or --knot-base-image when one is given, else None (knot's default base)."""
    language = script_language(rule, path)
    if language in ("python", "bash") or image:
        return
    debian = _DEBIAN.get(language)
    hint = f", e.g. one built FROM a Debian image with 'apt-get install {debian}'" if debian else ""
    raise RuleError(
        f"Rule '{rule}' runs {_NAMES[language]} script ({path}), which needs "
        f"{NEEDS[language]} in the job's image, and knot's default base image holds only "
        f"Python and bash. Name an image that has it with 'container:' (or the knot_image "
        f"resource, or --knot-base-image){hint}; or run the rule here with "
        f"'localrules: {rule}'."
    )


# ---- notebook: rules

# What nbconvert needs to run a Python notebook in the job's image: knot pins these to the
# versions installed here, as it pins a rule's imports.
NOTEBOOK_DISTRIBUTIONS = ("nbconvert", "ipykernel")


def notebook_imports(text: str) -> str:
    """The Python the image needs for a notebook: its code cells' lines (IPython magics and
    shell escapes left out) and the modules nbconvert runs it with."""
    notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    lines = [
        line
        for cell in notebook["cells"]
        if cell.get("cell_type") == "code"
        for line in str(cell.get("source", "")).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return "\n".join([*lines, *(f"import {name}" for name in NOTEBOOK_DISTRIBUTIONS)]) + "\n"


def check_notebook(rule: str, path: str, text: str) -> None:
    """Before anything is built: a notebook knot can run, with the tools to run it here.
    (--edit-notebook never gets this far: Snakemake allows it with local execution only.)"""
    language = _notebook_language(rule, path, text)
    if language != "python":
        raise RuleError(
            f"Rule '{rule}' runs the {language} notebook {path}; knot runs Python notebooks "
            f"only. Run it here with 'localrules: {rule}', or rewrite it as a script:."
        )
    missing = [name for name in NOTEBOOK_DISTRIBUTIONS if not _installed(name)]
    if missing:
        raise RuleError(
            f"Rule '{rule}' runs the notebook {path}, which needs {' and '.join(missing)} "
            "installed here: knot installs them in the job's image at the versions this "
            f"machine has. Run 'pip install {' '.join(missing)}' and start again."
        )


def _notebook_language(rule: str, path: str, text: str) -> str:
    try:
        notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        return str(notebook["metadata"]["language_info"]["name"]).lower()
    except (KeyError, ValueError, TypeError) as exc:
        raise RuleError(
            f"Rule '{rule}': the notebook {path} is not a Jupyter notebook with its "
            f"language in its metadata ({exc}). Save it from Jupyter once."
        ) from exc


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True
