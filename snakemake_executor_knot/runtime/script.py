"""``script:`` rules: run the Python script shipped in the image with a ``snakemake`` object."""

from __future__ import annotations

import contextlib
import hashlib
import os
import runpy
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .contract import RULE_DIR, RULE_DIR_ENV
from .namespace import Namespace
from .report import JobFailure
from .shell import shell


@dataclass(frozen=True)
class ReportHref:
    """A link, from one item of Snakemake's report to another, as ``snakemake.report_href``
    gives it: ``../<first 16 hex digits of the SHA-256 of the path as the report() marker
    names it>/<file name>``, or a path inside that item (``child_path``), with optional
    query arguments and anchor. The report lays its items out that way."""

    path: str
    root: str | None = None  # the report item a child path lies in
    query: tuple[tuple[str, str], ...] = ()
    fragment: str | None = None

    def child_path(self, path: str | os.PathLike) -> ReportHref:
        return ReportHref(Path(path).as_posix(), self.root or self.path)

    def url_args(self, **args: object) -> ReportHref:
        pairs = tuple((key, str(value)) for key, value in args.items())
        return ReportHref(self.path, self.root, pairs, None)

    def anchor(self, anchor: str) -> ReportHref:
        return ReportHref(self.path, self.root, self.query, anchor)

    def __str__(self) -> str:
        item = hashlib.sha256((self.root or self.path).encode()).hexdigest()[:16]
        name = self.path if self.root else os.path.basename(self.path)
        query = "&".join(f"{key}={quote(value)}" for key, value in self.query)
        return (
            f"../{item}/{name}"
            + (f"?{query}" if query else "")
            + (f"#{quote(self.fragment)}" if self.fragment else "")
        )


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

    def report_href(self, path: str | os.PathLike) -> ReportHref:
        """A link to ``path`` (as its report() marker names it) inside Snakemake's report."""
        return ReportHref(Path(path).as_posix() if not isinstance(path, str) else path)

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
        names = {"snakemake": context, "shell": shell, "__real_file__": real_file(path)}
        return runpy.run_path(path, names, run_name="__main__")


SCRIPTS_COPY_DIR = os.path.join(".snakemake", "scripts")


def real_file(path: str) -> str:
    """What Snakemake's preamble names ``__real_file__``: the file that really runs, its
    copy of the script under the working directory's ``.snakemake/scripts`` (``__file__``
    stays the script's own path). A copy is made there, so a script that looks is not
    surprised."""
    os.makedirs(SCRIPTS_COPY_DIR, exist_ok=True)
    with open(path, "rb") as source:
        body = source.read()
    name = f"tmp{hashlib.sha256(body).hexdigest()[:8]}.{os.path.basename(path)}"
    copy = os.path.abspath(os.path.join(SCRIPTS_COPY_DIR, name))
    with open(copy, "wb") as handle:
        handle.write(body)
    return copy


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
