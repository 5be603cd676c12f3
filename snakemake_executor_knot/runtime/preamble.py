"""R, R Markdown, Julia, Rust and Bash scripts: run the text the host wrote for this job.

The host wrote the script with Snakemake's own preamble (``jobs/preamble.py``); here it goes
to ``.snakemake/scripts/`` in the working directory, as Snakemake puts it, and runs with
the command Snakemake's ``execute_script`` gives, then the copy is removed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from .conda import conda_prefix
from .namespace import Namespace
from .report import JobFailure
from .script import ScriptContext, script_path
from .shell import shell

SCRIPTS_DIR = os.path.join(".snakemake", "scripts")
# A notebook's kernel finds the job's snakemake object (a pickle of knot's ScriptContext)
# and the working directory through these; the host puts NOTEBOOK_PREAMBLE in its first
# cell, where Snakemake puts its own preamble cell.
OBJECT_ENV = "KNOT_SNAKEMAKE_OBJECT"
WORKDIR_ENV = "KNOT_WORKDIR"
NOTEBOOK_PREAMBLE = f"""import os, pickle
os.chdir(os.environ[{WORKDIR_ENV!r}])
with open(os.environ[{OBJECT_ENV!r}], "rb") as handle:
    snakemake = pickle.load(handle)
"""
# The command field of a folder the job makes for the run (a notebook's IPYTHONDIR).
TMP_FIELD = "knot_tmp"


def run_foreign_script(ns: Namespace, script: Mapping[str, Any]) -> None:
    """Write the job's copy of the script and run it with its interpreter."""
    text, command = script.get("text"), script.get("command")
    filename = os.path.basename(str(script.get("filename") or "script"))
    if not isinstance(text, str) or not isinstance(command, str):
        raise JobFailure(f"script {script.get('path')!r}: the spec holds no text to run")
    notebook = str(script.get("language", "")).startswith("jupyter")
    # nbconvert is in knot's venv; a conda environment with its own jupyter runs the
    # notebook itself, as Snakemake runs it there.
    env = {"PATH": _venv_first()} if notebook and not _env_jupyter() else {}
    check_interpreter(command, script, env.get("PATH"))
    os.makedirs(SCRIPTS_DIR, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        fname = _written(text, filename, cleanup)
        values = arguments(script)
        if notebook:
            values[TMP_FIELD] = cleanup.enter_context(tempfile.TemporaryDirectory())
            pickled = _written_bytes(pickle.dumps(ScriptContext(ns, script_dir(script))), cleanup)
            env |= {
                "IPYTHONDIR": values[TMP_FIELD],
                OBJECT_ENV: os.path.abspath(pickled),
                WORKDIR_ENV: os.getcwd(),
            }
        shell(command, fname=fname, threads=ns.threads, additional_envvars=env, **values)


def _written(text: str, filename: str, cleanup: contextlib.ExitStack) -> str:
    """The job's copy of the script under SCRIPTS_DIR, removed when ``cleanup`` closes."""
    return _written_bytes(text.encode(), cleanup, suffix=f".{filename}")


def _written_bytes(data: bytes, cleanup: contextlib.ExitStack, suffix: str = "") -> str:
    with tempfile.NamedTemporaryFile(suffix=suffix, dir=SCRIPTS_DIR, delete=False) as handle:
        handle.write(data)
    cleanup.callback(os.remove, handle.name)
    return handle.name


def script_dir(script: Mapping[str, Any]) -> str:
    """The folder of the rule's file in the image (a notebook's ``snakemake.scriptdir``)."""
    return os.path.dirname(script_path(str(script.get("path") or ""), os.environ))


def _env_jupyter() -> bool:
    """Whether the rule's activated conda environment has its own ``jupyter``."""
    prefix = conda_prefix(os.environ)
    return bool(prefix) and os.path.isfile(os.path.join(str(prefix), "bin", "jupyter"))


def _venv_first() -> str:
    """PATH with this interpreter's folder (knot's venv) first."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def arguments(script: Mapping[str, Any]) -> dict[str, Any]:
    """The command's format arguments; those the host made relative to its working
    directory go under this one, as Snakemake made them absolute."""
    given = script.get("arguments") or {}
    values = dict(given.get("values") or {})
    for key in given.get("relative") or []:
        if isinstance(values.get(key), str):
            values[key] = os.path.normpath(os.path.join(os.getcwd(), values[key]))
    return values


def check_interpreter(command: str, script: Mapping[str, Any], path: str | None = None) -> None:
    """A clear failure when the image lacks the program the command starts."""
    program = shlex.split(command)[0]
    if shutil.which(program, path=path) is None:
        raise JobFailure(
            f"script {script.get('path')!r} ({script.get('language')}) needs {program!r}, "
            "which is not on the PATH of the rule's image; name an image that has it with "
            "container:"
        )
