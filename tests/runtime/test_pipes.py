"""pipe() members of a group run at once, joined by a FIFO (runtime/pipes.py)."""

from __future__ import annotations

import os
import signal
import stat
import time
from types import SimpleNamespace

from snakemake_executor_knot.runtime import pipes
from snakemake_executor_knot.runtime.usage import Meter


def test_a_pipe_group_runs_where_its_first_member_stands():
    members = [{}, {"pipe_group": 0}, {}, {"pipe_group": 0}, {"pipe_group": 1}, {"pipe_group": 1}]
    assert pipes.stages(members) == [[0], [1, 3], [2], [4, 5]]
    assert pipes.stages([{}, {}]) == [[0], [1]]


def test_pipe_outputs_are_named_by_the_spec():
    member = {"output": {"items": [{"path": "a.txt"}, {"path": "p.fifo", "pipe": True}]}}
    assert pipes.pipe_paths(member) == ["p.fifo"]


def test_writer_and_reader_run_at_once_through_the_fifo(tmp_path):
    fifo = str(tmp_path / "sub" / "p")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p").write_text("an earlier attempt's file")
    pipes.make_fifos([fifo])
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)

    def run_one(job) -> bool:
        if job.name == "writer":
            with open(fifo, "w") as out:
                out.writelines(f"{i}\n" for i in range(10000))
        else:
            with open(fifo) as src, open(tmp_path / "out.txt", "w") as out:
                out.write(str(sum(int(line) for line in src)))
        return True

    # The reader first: it blocks on the FIFO until the writer opens it.
    jobs = [SimpleNamespace(name="reader", meter=Meter()), SimpleNamespace(name="writer")]
    assert pipes.run_together(jobs, run_one) == [True, True]
    assert (tmp_path / "out.txt").read_text() == str(sum(range(10000)))
    assert jobs[0].meter.document()["run_s"] is not None


def test_a_failing_member_ends_the_one_waiting_on_the_fifo(tmp_path):
    fifo = str(tmp_path / "p")
    pipes.make_fifos([fifo])

    def run_one(job) -> bool:
        if job.name == "writer":
            return False  # fails before it ever opens the pipe
        with open(fifo) as src:  # would wait forever
            src.read()
        return True

    began = time.monotonic()
    jobs = [SimpleNamespace(name="writer"), SimpleNamespace(name="reader")]
    # A parent whose SIGTERM handler only takes note (as Snakemake's scheduler installs
    # one): its forked members must still end.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        assert pipes.run_together(jobs, run_one) == [False, False]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert time.monotonic() - began < 10
