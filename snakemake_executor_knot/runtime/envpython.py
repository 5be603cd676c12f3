"""A Python script (or wrapper) of a rule with a conda environment, run by the
environment's own ``python``, as Snakemake runs it.

Snakemake pickles its ``snakemake`` object into the script's preamble and puts its own
package folder at the end of the environment Python's ``sys.path``, so that the object
unpickles there without Snakemake in the environment. knot does the same with its own
runtime: this process pickles the job's ``ScriptContext`` (``script.py``) to a file under
``.snakemake/scripts/``, and runs, through ``shell()`` (the environment activated, as
Snakemake runs ``python <script>``), a small launcher that appends the folder holding this
package to ``sys.path`` and calls ``main`` below. ``main`` runs in the environment's Python:
it sets up what ``script.run_script`` sets up in knot's own (the ``snakemake`` global,
``snakemake.shell``'s ``shell``, the script's folder on ``sys.path``) and runs the script.
The modules it imports (this one, ``script``, ``namespace``, ``namedlist``, ``shell``,
``report``, ``contract``, ``values``) use the standard library only and Python 3.8's syntax.

As in Snakemake, an environment without ``python``, or with one older than
``MIN_VERSION``, runs the script with knot's own Python instead, the environment still
activated for its shell commands. Unlike Snakemake, which appends its whole ``sys.path``,
only the runtime's folder is appended: knot's venv (boto3) stays out of the environment.
The Snakefile's ``shell.executable``, ``prefix`` and ``suffix`` reach the script's
``shell()`` as they do in knot's own Python.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from .script import ScriptContext, snakemake_aliases
from .shell import shell

# The oldest Python the modules above run on (positional-only parameters need 3.8).
MIN_VERSION = (3, 8)
# Protocol 4, as Snakemake pickles its object: every Python from 3.4 on reads it.
PICKLE_PROTOCOL = 4
SCRIPTS_DIR = os.path.join(".snakemake", "scripts")
_VERSION = re.compile(r"Python (\d+)\.(\d+)")


def env_python(prefix: str) -> str | None:
    """The environment's ``bin/python`` when it exists and is new enough, else None."""
    python = os.path.join(prefix, "bin", "python")
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        return None
    try:
        done = subprocess.run(
            [python, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # Python 2 prints its version on stderr.
    found = _VERSION.search(done.stdout + done.stderr)
    if not found or (int(found[1]), int(found[2])) < MIN_VERSION:
        return None
    return python


def fallback_notice(prefix: str) -> str:
    """What the job says when the environment cannot run the script itself."""
    minimum = ".".join(map(str, MIN_VERSION))
    return (
        f"knot: the conda environment {prefix} has no python {minimum} or newer; the "
        "Python script runs with knot's own Python, the environment activated for its "
        "commands, as Snakemake runs it with its own (the environment's Python packages "
        "do not import). Add python to the environment file to run it there."
    )


def run_in_env(context: ScriptContext, python: str, path: str, sys_path: list[str]) -> None:
    """Run the script at ``path`` with ``python``, the environment's (``env_python``), in
    the activated environment; ``sys_path`` goes first on its ``sys.path``."""
    payload = {
        "context": context,
        "path": path,
        "sys_path": sys_path,
        "shell": {
            "executable": shell._executable,
            "prefix": shell._prefix,
            "suffix": shell._suffix,
        },
    }
    os.makedirs(SCRIPTS_DIR, exist_ok=True)
    pickled = pickle.dumps(payload, protocol=PICKLE_PROTOCOL)
    # Nested, not one parenthesised with: this module parses as Python 3.8.
    with _written(pickled, ".pickle") as data:  # noqa: SIM117
        with _written(launcher(data).encode(), f".{os.path.basename(path)}") as script:
            # As Snakemake's "python {fname:q}" through shell(): activation, threads.
            shell("{python:q} {script:q}", python=python, script=script, threads=context.threads)


def launcher(data: str) -> str:
    """The file the environment's Python runs: this package's folder last on sys.path (as
    Snakemake appends its own), then ``main`` on the pickle at ``data``."""
    package = __package__ or "knot_runtime"
    root = os.path.abspath(__file__)
    for _ in range(len(package.split(".")) + 1):
        root = os.path.dirname(root)
    return (
        "import sys\n"
        f"sys.path.append({root!r})\n"
        f"from {package}.envpython import main\n"
        f"main({os.path.abspath(data)!r})\n"
    )


@contextlib.contextmanager
def _written(data: bytes, suffix: str) -> Iterator[str]:
    with tempfile.NamedTemporaryFile(suffix=suffix, dir=SCRIPTS_DIR, delete=False) as handle:
        handle.write(data)
    try:
        yield handle.name
    finally:
        os.remove(handle.name)


def main(data: str) -> None:
    """In the environment's Python: run the script the pickle at ``data`` names."""
    with open(data, "rb") as handle:
        try:
            payload: Mapping[str, Any] = pickle.load(handle)
        except (ImportError, AttributeError) as exc:
            raise SystemExit(
                "knot: the conda environment's python cannot rebuild the job's snakemake "
                f"object ({type(exc).__name__}: {exc}): a param or config value's type "
                "comes from a package the environment lacks. Add that package to the "
                "environment, as Snakemake needs it there too."
            ) from exc
    context, path = payload["context"], payload["path"]
    sys.path[:0] = [p for p in payload["sys_path"] if p not in sys.path]
    if context.scriptdir not in sys.path:  # as script.run_script
        sys.path.append(context.scriptdir)
    settings = payload["shell"]
    shell._executable = settings["executable"]
    shell._prefix = settings["prefix"]
    shell._suffix = settings["suffix"]
    shell._activation = ""  # already active: the launcher's shell sourced it
    with snakemake_aliases(context):
        names = {"snakemake": context, "shell": shell, "__real_file__": path}
        runpy.run_path(path, names, run_name="__main__")
