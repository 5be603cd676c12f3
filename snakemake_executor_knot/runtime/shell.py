"""``shell()`` with Snakemake's semantics: strict bash, caller-scope formatting, ``:q``."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from .namedlist import Wildcards

# Linux caps one argv string at 32 pages (128 KiB); `bash -c <cmd>` passes the command as
# one argument, so longer commands go through a script file instead.
MAX_ARG_BYTES = 128 * 1024 - 1024

_SEQUENCES = (list, tuple, set, frozenset)
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class CommandFormatter(string.Formatter):
    """Formats like Snakemake: sequences join with spaces, ``:q`` shell-quotes each item."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Wildcards):
            return ",".join(f"{name}={item}" for name, item in sorted(value.items()))
        if isinstance(value, _SEQUENCES):
            return " ".join(self._format_one(item, format_spec) for item in value)
        return self._format_one(value, format_spec)

    def _format_one(self, value: Any, format_spec: str) -> str:
        quote = format_spec.endswith("q")
        if format_spec.endswith(("q", "u")):  # "u" forces no quoting, as in Snakemake
            format_spec = format_spec[:-1]
        text = super().format_field(value, format_spec)
        return shlex.quote(text) if quote and text else text


def format_command(pattern: str, args: tuple, variables: Mapping[str, Any]) -> str:
    """Format ``pattern`` with ``variables``; an unknown name raises a NameError that says
    how to fix it (wildcards.<name>, or doubled braces for a literal brace)."""
    try:
        return CommandFormatter().vformat(pattern, args, variables)
    except KeyError as exc:
        name = str(exc.args[0])
        wildcards = variables.get("wildcards")
        # `name in wildcards` would test the values: Namedlist is a list.
        if isinstance(wildcards, Wildcards) and name in dict(wildcards.items()):
            raise NameError(
                f"{name!r} is not defined here; did you mean 'wildcards.{name}'?"
            ) from None
        raise NameError(
            f"the command refers to {{{name}}} but no variable {name!r} is defined here. "
            "Define it, or double the braces ({{ and }}) for literal braces in the command."
        ) from None


def frame_variables(frame: FrameType) -> dict[str, Any]:
    """The globals and then the locals of a frame, as Snakemake's shell() sees its caller."""
    variables = dict(frame.f_globals)
    variables.update(frame.f_locals)
    return variables


def thread_count(variables: Mapping[str, Any]) -> int:
    """Threads for the *_NUM_THREADS variables: the rule's ``threads`` or the script's."""
    threads = variables.get("threads")
    if threads is None and hasattr(variables.get("snakemake"), "threads"):
        threads = variables["snakemake"].threads
    return threads if isinstance(threads, int) else 1


def temporary_folder(variables: Mapping[str, Any]) -> str | None:
    """The ``tmpdir`` resource, if the host set one that exists in this container."""
    resources = variables.get("resources")
    if resources is None or not hasattr(resources, "get"):
        return None
    tmpdir = resources.get("tmpdir")
    return tmpdir if isinstance(tmpdir, str) and os.path.isdir(tmpdir) else None


def command_environment(
    variables: Mapping[str, Any], extra: Mapping[str, str] | None
) -> dict[str, str]:
    """The process environment plus thread counts and TMPDIR, as Snakemake's shell() sets."""
    env = dict(os.environ)
    env.update({name: str(thread_count(variables)) for name in _THREAD_VARIABLES})
    tmpdir = temporary_folder(variables)
    if tmpdir:
        env.update(dict.fromkeys(("TMPDIR", "TMP", "TEMP", "TEMPDIR"), tmpdir))
    if extra:
        if not all(isinstance(value, str) for value in extra.values()):
            raise TypeError("additional_envvars must map names to strings")
        env.update(extra)
    return env


def default_executable() -> str | None:
    return shutil.which("bash") or shutil.which("sh")


class shell:  # lower case: the name a Snakefile uses
    """Run a shell command: ``shell(cmd, read=False, iterable=False, **kwargs)``.

    ``{name}`` fields come from the caller's globals and locals plus ``kwargs``. With bash
    the command runs under ``set -euo pipefail`` unless ``shell.prefix()`` replaced it. A
    non-zero exit raises ``subprocess.CalledProcessError``. ``read=True`` returns stdout;
    ``iterable=True`` yields stdout lines.
    """

    _executable: str | None = default_executable()
    _prefix: str | None = None
    _suffix: str = ""
    _activation: str = ""  # a conda environment's activation scripts (runtime/conda.py)

    def __new__(cls, cmd: str, /, *args: Any, iterable: bool = False, read: bool = False, **kwargs):
        kwargs.pop("bench_record", None)  # Snakemake's own argument; the runtime times the job
        extra_env = kwargs.pop("additional_envvars", None)
        # The caller's frame: sys._getframe(1) is what inspect.currentframe().f_back
        # reaches, without the None that currentframe() may give on other Pythons.
        variables = frame_variables(sys._getframe(1))
        variables.update(kwargs)
        command = cls._wrap(format_command(cmd, args, variables))
        env = command_environment(variables, extra_env)
        if iterable:
            return _iterate_lines(command, cls._executable, env)
        return _run(command, cls._executable, env, capture=read)

    @classmethod
    def executable(cls, cmd: str | Path | None) -> None:
        """Use ``cmd`` as the shell (a name on PATH or a path); None means /bin/sh."""
        cmd = str(cmd) if cmd is not None else None
        if cmd and not os.path.isabs(cmd):
            found = shutil.which(cmd)
            if not found:
                raise FileNotFoundError(f"cannot use {cmd!r} as the shell: it is not on PATH")
            cmd = found
        cls._executable = cmd

    @classmethod
    def prefix(cls, text: str) -> None:
        """Put ``text`` before every command; this replaces the strict-mode prefix."""
        cls._prefix = format_command(text, (), frame_variables(sys._getframe(1)))

    @classmethod
    def suffix(cls, text: str) -> None:
        cls._suffix = format_command(text, (), frame_variables(sys._getframe(1)))

    @classmethod
    def _wrap(cls, command: str) -> str:
        name = os.path.basename(cls._executable or "").lower()
        prefix = cls._prefix
        if prefix is None:
            prefix = "set -euo pipefail; " if name == "bash" else ""
        return " ".join((cls._activation + prefix, command, cls._suffix)).strip()


@contextlib.contextmanager
def _runnable(command: str, executable: str | None) -> Iterator[str]:
    """The command itself, or for an over-long one, a call of a script holding it."""
    if len(command.encode()) <= MAX_ARG_BYTES:
        yield command
        return
    with tempfile.TemporaryDirectory(prefix="knot-shell-") as folder:
        script = os.path.join(folder, "command.sh")
        Path(script).write_text(command + "\n")
        yield f"{shlex.quote(executable or '/bin/sh')} {shlex.quote(script)}"


def _popen(command: str, executable: str | None, env: dict, capture: bool) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        shell=True,
        executable=executable,
        stdout=subprocess.PIPE if capture else None,
        text=capture or None,
        env=env,
    )


def _run(command: str, executable: str | None, env: dict, capture: bool) -> str | None:
    with _runnable(command, executable) as runnable:
        proc = _popen(runnable, executable, env, capture)
        stdout, _ = proc.communicate()
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, command)
    return stdout if capture else None


def _iterate_lines(command: str, executable: str | None, env: dict) -> Iterator[str]:
    with _runnable(command, executable) as runnable:
        proc = _popen(runnable, executable, env, capture=True)
        assert proc.stdout is not None  # capture=True: stdout is a pipe
        with proc.stdout:
            for line in proc.stdout:
                yield line.rstrip("\n")
        returncode = proc.wait()
    if returncode:
        raise subprocess.CalledProcessError(returncode, command)
