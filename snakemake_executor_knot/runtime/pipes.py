"""pipe() outputs in a group job: the writer and the reader of a pipe run at the same time,
joined by a named FIFO at the pipe's path, as Snakemake runs them on one machine.

Snakemake puts the jobs a pipe joins into one group and, with their dependencies shared
(``toposorted(inherit_pipe_dependencies=True)``), into one topological layer; the host
marks them with the same ``pipe_group`` in the group's spec. So a pipe group can start
where its first member stands in the spec's order: everything it needs ran in an earlier
layer. Each member of a pipe group runs in a forked process of its own (a member's rule
module, ``sys.path`` and working state are per process, as ``group.member_code`` needs),
in a process group of its own, so that when one fails the others, and the commands they
started, are ended instead of waiting forever on a FIFO nobody opens.
Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .benchmark import Usage
from .report import JobFailure


def stages(members: Sequence[dict[str, Any]]) -> list[list[int]]:
    """The members' indexes in the order they run: one member alone, or every member of
    one pipe group together, placed where the group's first member stands."""
    found: list[list[int]] = []
    placed: dict[Any, int] = {}
    for index, member in enumerate(members):
        group = member.get("pipe_group")
        if group is None:
            found.append([index])
        elif group in placed:
            found[placed[group]].append(index)
        else:
            placed[group] = len(found)
            found.append([index])
    return found


def pipe_paths(member: dict[str, Any]) -> list[str]:
    """The paths of a member's pipe() outputs."""
    return [i["path"] for i in member["output"]["items"] if i.get("pipe") is True]


def make_fifos(paths: Iterable[str]) -> None:
    """A named FIFO at each pipe's path, replacing whatever is there (an earlier attempt's)."""
    for path in paths:
        if os.path.lexists(path):
            os.remove(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            os.mkfifo(path)
        except OSError as exc:
            raise JobFailure(f"could not create the FIFO of pipe output {path}: {exc}") from exc


def run_together(jobs: Sequence[Any], run_one: Callable[[Any], bool]) -> list[bool]:
    """Run ``run_one(job)`` for every job at once, each in a forked process; whether each
    succeeded, in the order given. The first failure ends the others."""
    sys.stdout.flush()
    sys.stderr.flush()
    started = Usage.now()
    pids = {_fork(job, run_one): index for index, job in enumerate(jobs)}
    results: list[bool | None] = [None] * len(jobs)
    while None in results:
        pid, status, rusage = os.wait4(-1, 0)
        if pid not in pids:
            continue
        index = pids[pid]
        results[index] = os.waitstatus_to_exitcode(status) == 0
        _record(jobs[index], started, rusage)
        if not results[index]:
            _end_others(p for p, i in pids.items() if results[i] is None)
    return [bool(ok) for ok in results]


def _fork(job: Any, run_one: Callable[[Any], bool]) -> int:
    # SIGTERM must end a member (``_end_others``) whatever handler the parent has: one that
    # only takes note (as Snakemake's scheduler installs) would leave a reader waiting on
    # its FIFO for ever. It is blocked across the fork, so none arrives before the child
    # has the default action back.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        # Both sides set the process group, so that it exists before either goes on.
        # PermissionError: the child set it already; ProcessLookupError: it has ended.
        with contextlib.suppress(PermissionError, ProcessLookupError):
            os.setpgid(pid, pid)
        return pid
    ok = False
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        ok = run_one(job)
    # The member's failure is reported by run_one; anything else must still end this
    # process here, never run on into the parent's code.
    except BaseException as exc:  # noqa: BLE001
        print(f"knot: a pipe member failed: {exc!r}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if ok else 1)


def _end_others(pids: Iterable[int]) -> None:
    """SIGTERM to each running member's process group (its commands too)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)


def _record(job: Any, started: Usage, rusage: Any) -> None:
    """The member's meter from its process's rusage, for the group's usage document."""
    meter = getattr(job, "meter", None)
    if meter is None:
        return
    meter.before = started
    meter.after = Usage(
        wall=time.monotonic(),
        cpu=started.cpu + rusage.ru_utime + rusage.ru_stime,
        max_rss_kib=rusage.ru_maxrss,
        blocks_in=started.blocks_in + rusage.ru_inblock,
        blocks_out=started.blocks_out + rusage.ru_oublock,
    )
