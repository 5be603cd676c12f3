"""R, R Markdown, Julia, Rust and Bash scripts: run the text the host wrote for this job.

The host wrote the script with Snakemake's own preamble (``jobs/preamble.py``); here it goes
to ``.snakemake/scripts/`` in the working directory, as Snakemake puts it, and runs with
the command Snakemake's ``execute_script`` gives, then the copy is removed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from .namespace import Namespace
from .report import JobFailure
from .shell import shell

SCRIPTS_DIR = os.path.join(".snakemake", "scripts")


def run_foreign_script(ns: Namespace, script: Mapping[str, Any]) -> None:
    """Write the job's copy of the script and run it with its interpreter."""
    text, command = script.get("text"), script.get("command")
    filename = os.path.basename(str(script.get("filename") or "script"))
    if not isinstance(text, str) or not isinstance(command, str):
        raise JobFailure(f"script {script.get('path')!r}: the spec holds no text to run")
    check_interpreter(command, script)
    os.makedirs(SCRIPTS_DIR, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", suffix=f".{filename}", dir=SCRIPTS_DIR, delete=False, encoding="utf-8"
    ) as handle:
        handle.write(text)
    try:
        shell(command, fname=handle.name, threads=ns.threads, **arguments(script))
    finally:
        os.remove(handle.name)


def arguments(script: Mapping[str, Any]) -> dict[str, Any]:
    """The command's format arguments; those the host made relative to its working
    directory go under this one, as Snakemake made them absolute."""
    given = script.get("arguments") or {}
    values = dict(given.get("values") or {})
    for key in given.get("relative") or []:
        if isinstance(values.get(key), str):
            values[key] = os.path.normpath(os.path.join(os.getcwd(), values[key]))
    return values


def check_interpreter(command: str, script: Mapping[str, Any]) -> None:
    """A clear failure when the image lacks the program the command starts."""
    program = shlex.split(command)[0]
    if shutil.which(program) is None:
        raise JobFailure(
            f"script {script.get('path')!r} ({script.get('language')}) needs {program!r}, "
            "which is not on the PATH of the rule's image; name an image that has it with "
            "container:"
        )
