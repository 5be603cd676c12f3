"""``script:`` rules: run the Python script shipped in the image with a ``snakemake`` object."""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any

from .contract import RULE_DIR, RULE_DIR_ENV
from .namespace import Namespace
from .report import JobFailure
from .shell import shell


class ScriptContext:
    """The ``snakemake`` object a Snakemake Python script finds as a global."""

    def __init__(self, ns: Namespace, scriptdir: str) -> None:
        self.input = ns.input
        self.output = ns.output
        self.params = ns.params
        self.wildcards = ns.wildcards
        self.threads = ns.threads
        self.resources = ns.resources
        self.log = ns.log
        self.config = ns.config
        self.rule = ns.rule
        self.bench_iteration = None
        self.scriptdir = scriptdir

    def log_fmt_shell(self, stdout: bool = True, stderr: bool = True, append: bool = False) -> str:
        """A redirection of a shell command's stdout and/or stderr to the rule's log, or
        "" when the rule has no log (as Snakemake's)."""
        log = str(self.log)
        if not log or not (stdout or stderr):
            return ""
        arrow = ">>" if append else ">"
        if not stdout:
            return f" 2{arrow} {log}"
        return f" {arrow} {log}" + (" 2>&1" if stderr else "")


def script_path(relative: str, env: Mapping[str, str]) -> str:
    """Where the image holds the script: ``<KNOT_RULE_DIR>/<path as written in the rule>``."""
    base = env.get(RULE_DIR_ENV, RULE_DIR)
    return os.path.join(base, relative.lstrip("/"))


def checked_script_path(relative: str, env: Mapping[str, str]) -> str:
    """The image's Python script of the rule; a JobFailure when it is not there."""
    path = script_path(relative, env)
    if not path.endswith(".py"):
        raise JobFailure(f"script {relative!r}: knot runs only Python scripts (.py)")
    if not os.path.isfile(path):
        raise JobFailure(f"script {relative!r} is not in the image at {path}; rebuild the image")
    return path


def run_script(ns: Namespace, relative: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Run the script as ``__main__`` in this process; returns its globals."""
    path = checked_script_path(relative, env)
    scriptdir = os.path.dirname(path)
    if scriptdir not in sys.path:  # Snakemake lets a script import modules next to it
        sys.path.append(scriptdir)
    context = ScriptContext(ns, scriptdir)
    with snakemake_aliases(context):
        # Snakemake's preamble names the file that really runs __real_file__ (its copy
        # under .snakemake/scripts); here that is the script itself.
        names = {"snakemake": context, "shell": shell, "__real_file__": path}
        return runpy.run_path(path, names, run_name="__main__")


@contextlib.contextmanager
def snakemake_aliases(context: ScriptContext) -> Iterator[None]:
    """Let a script's ``from snakemake.script import snakemake`` (Snakemake's advice for
    editor support) and ``from snakemake.shell import shell`` work without Snakemake: for
    the script's run only, those names resolve to stand-in modules holding our objects."""
    package = types.ModuleType("snakemake")
    package.__path__ = []  # a package, so its submodules can be imported
    script = types.ModuleType("snakemake.script")
    vars(script)["snakemake"] = context
    shell_module = types.ModuleType("snakemake.shell")
    vars(shell_module)["shell"] = shell
    vars(package).update(script=script, shell=shell_module)
    names = ("snakemake", "snakemake.script", "snakemake.shell")
    saved = {name: sys.modules[name] for name in names if name in sys.modules}
    sys.modules.update(zip(names, (package, script, shell_module)))  # noqa: B905 (3.8)
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
