"""The journal, ``.snakemake/knot/journal.jsonl``: one line per job a run submitted, and one
per job it reported, appended as the run goes. A later run reads it to find the jobs an
earlier one left in Batch (``adoption``). It is a hint, never the truth: every entry is
checked against Batch before a job is adopted, so a damaged line costs an adoption at most.

A run killed during an append leaves a torn last line. The next append ends it first, so
the torn line stays one damaged line and never swallows the next entry (a lost
``reported`` line would let a reported job be adopted again). Appends are flushed and
fsynced; when a run ends, the journal is compacted: entries of reported jobs are dropped
and the file is replaced atomically.

Each entry names the run that submitted it, and a run holds an exclusive ``flock`` on
``.snakemake/knot/runs/<run id>.lock`` while it lives (the kernel releases it when the
process dies, however it dies): a later run can tell a job whose run still lives (another
Snakemake in this folder, with other targets) from one a dead run left behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("knot")

JOURNAL = Path(".snakemake", "knot", "journal.jsonl")
RUNS = Path(".snakemake", "knot", "runs")
_HEX = frozenset("0123456789abcdef")
_RUN_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


@dataclass(frozen=True)
class Entry:
    """One submitted job as the journal remembers it."""

    spec: str  # spec_hash of the job
    submission: str  # the knot:spec tag of its SubmitJob
    batch_id: str  # '<id>' or '<parent>:<index>'
    image: str
    job_definition: str  # one per image (content-hashed name), so it pins the image too
    rule: str
    jobid: int
    spec_uri: str
    index: int
    # produces_hash (rule, outputs, logs, benchmark); "" on lines written before it existed
    produces: str = ""
    run: str = ""  # the run id of the run that submitted it; "" on older lines


def read_journal(path: Path = JOURNAL) -> tuple[list[Entry], bool]:
    """The journal's well-formed entries, and whether it exists. Bad lines are skipped
    with one warning: they can only cost adoptions."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return [], False
    except OSError as exc:
        log.warning(f"knot: ignoring the journal {path}: {exc}")
        return [], False
    entries = [e for e in map(_entry, lines) if e is not None]
    closed = {d for d in map(_closed, lines) if d is not None}
    bad = (
        len([line for line in lines if line.strip()])
        - len(entries)
        - len([line for line in lines if _closed(line) is not None])
    )
    if bad:
        log.warning(f"knot: ignoring {bad} damaged line(s) of the journal {path}")
    # A job some run already reported is that run's result: never adopt it again (a later
    # run with --forceall, or after deleting outputs, means to run it anew).
    return [e for e in entries if e.batch_id not in closed], True


def _closed(line: str) -> str | None:
    """The batch id of a ``{"reported": id}`` line."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and len(data) == 1 and isinstance(data.get("reported"), str):
        return data["reported"]
    return None


def _entry(line: str) -> Entry | None:
    try:
        data = json.loads(line)
        entry = Entry(**data)
    except (ValueError, TypeError, RecursionError):
        return None
    strings = (entry.batch_id, entry.image, entry.job_definition, entry.rule, entry.spec_uri)
    hashes = (entry.spec, entry.submission)
    valid = (
        all(isinstance(s, str) and s for s in strings)
        and all(_is_hash(h) for h in hashes)
        and (entry.produces == "" or _is_hash(entry.produces))
        and isinstance(entry.run, str)
        and (entry.run == "" or _RUN_ID.fullmatch(entry.run) is not None)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in (entry.jobid, entry.index))
    )
    return entry if valid else None


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def _line(item: Entry | str) -> str:
    data = asdict(item) if isinstance(item, Entry) else {"reported": item}
    return json.dumps(data, sort_keys=True) + "\n"


def append_journal(entries: Sequence[Entry | str], path: Path = JOURNAL) -> None:
    """Submitted jobs (Entry) and reported ones (their batch id), one line each, on disk
    before this returns. A torn last line (a run killed mid-append) is ended first."""
    data = "".join(map(_line, entries)).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell():
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                data = b"\n" + data
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def compact_journal(path: Path = JOURNAL) -> None:
    """Keep only the entries of jobs no run reported (those a later run may still adopt
    or terminate); damaged lines go too. Written beside and renamed over the journal, so a
    crash leaves the old journal or the new one, never a mix."""
    entries, exists = read_journal(path)
    if not exists:
        return
    temporary = path.with_name(path.name + ".compacting")
    try:
        with temporary.open("wb") as handle:
            handle.write("".join(map(_line, entries)).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        log.warning(f"knot: could not compact the journal {path}: {exc}")


class RunLock:
    """This run's ``flock``, held from start to end (see the module's docstring)."""

    def __init__(self, run_id: str, folder: Path = RUNS) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{run_id}.lock"
        self._handle = self.path.open("w")
        fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        self._handle.close()


def run_alive(run_id: str, folder: Path = RUNS) -> bool:
    """Whether the run that wrote ``run_id`` still holds its lock. A run id the journal
    names is checked before it becomes a path; unknown runs count as dead."""
    if not _RUN_ID.fullmatch(run_id):
        return False
    try:
        handle = (folder / f"{run_id}.lock").open("r")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
