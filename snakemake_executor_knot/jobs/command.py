"""A shell rule's command for one job.

Snakemake keeps a ``shell:`` directive's expression in the rule's function and evaluates it
there, with the job's names, each time a job runs; ``rule.shellcmd`` is the same expression
evaluated once, while the Snakefile was read. An expression that reads the job's names (an
f-string such as ``f"echo hi > {output.txt}"``, common in imported modules) shows there
Snakemake's stand-in for them (``<function RuleItemProxy._deferred_get...>``). For such a
rule the job's command is the expression evaluated again for this job, as Snakemake does;
the runtime then formats it (``{input}`` and the like) as Snakemake's ``shell()`` would.
The job's names are those its container gives it (``jobs/sourcepaths.py``): an input from
outside the working directory under the job's external folder, for instance.
"""

from __future__ import annotations

import dis
import functools
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RuleError
from .sourcepaths import job_files, job_params, job_text

if TYPE_CHECKING:
    from snakemake.jobs import Job

# What the rule's function receives that is the job's own (Snakemake's run_wrapper).
_JOB_NAMES = frozenset(
    {"input", "output", "params", "wildcards", "threads", "resources", "log", "rule", "jobid"}
)
_CAPTURE = threading.Lock()  # one capture at a time per function copy


def job_command(job: Job) -> str | None:
    """The shell command of ``job``: ``rule.shellcmd``, or the directive's expression
    evaluated with this job's names when it reads them."""
    command = _evaluated(job)
    if command is None:
        return None
    # A workflow.source_path() written into the command names the host's cache.
    return job_text(command, job.rule.workflow, Path.cwd())


def _evaluated(job: Job) -> str | None:
    rule = job.rule
    func = getattr(rule, "run_func", None)
    if func is None or not reads_job_names(func.__code__):
        return rule.shellcmd
    captured: list[object] = []
    capturing = _capturing(func)
    arguments = dict.fromkeys(func.__code__.co_varnames[: func.__code__.co_argcount])
    arguments.update(_job_arguments(job))
    try:
        with _CAPTURE:
            capturing.__globals__["shell"] = lambda command, *_, **__: captured.append(command)
            capturing(**arguments)
    except Exception as exc:  # the Snakefile's own expression: anything may fail in it
        raise RuleError(
            f"Rule '{rule.name}': its shell: command could not be evaluated for job "
            f"{job.jobid} ({type(exc).__name__}: {exc})."
        ) from exc
    if len(captured) != 1 or not isinstance(captured[0], str):
        return rule.shellcmd
    return captured[0]


def reads_job_names(code: types.CodeType) -> bool:
    """Whether a shell rule's function reads one of the job's names (its arguments)
    to build the command."""
    arguments = set(code.co_varnames[: code.co_argcount]) & _JOB_NAMES
    for instruction in dis.get_instructions(code):
        if not instruction.opname.startswith(("LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE")):
            continue
        value = instruction.argval  # a tuple for the paired loads of Python 3.13
        if arguments.intersection(value if isinstance(value, tuple) else (value,)):
            return True
    return False


@functools.lru_cache(maxsize=64)
def _capturing(func: types.FunctionType) -> types.FunctionType:
    """The rule's function over a copy of its globals, whose ``shell`` the caller swaps
    for one that keeps the command: the Snakefile's own globals stay untouched."""
    return types.FunctionType(
        func.__code__, dict(func.__globals__), func.__name__, func.__defaults__, func.__closure__
    )


def _job_arguments(job: Job) -> dict:
    return {
        "input": job_files(job.input, Path.cwd()),
        "output": job_files(job.output, Path.cwd()),
        "params": job_params(job.params, Path.cwd(), job.rule.workflow),
        "wildcards": job.wildcards,
        "threads": job.threads,
        "resources": job.resources,
        "log": job_files(job.log, Path.cwd()),
        "rule": job.rule.name,
        "jobid": job.jobid,
        "is_shell": True,
    }
