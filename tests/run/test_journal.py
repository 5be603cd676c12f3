"""The journal as a file: a torn last line stays one damaged line, appends reach the disk,
and compaction keeps only the entries of jobs no run reported."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from snakemake_executor_knot.run.journal import (
    Entry,
    RunLock,
    append_journal,
    compact_journal,
    read_journal,
    run_alive,
)


def _entry(batch_id: str, produces: str = "c" * 64, run: str = "") -> Entry:
    return Entry(
        spec="a" * 64,
        submission="b" * 64,
        batch_id=batch_id,
        image="repo:tag",
        job_definition="arn:jd",
        rule="b",
        jobid=1,
        spec_uri="s3://bucket/knot/specs/run/b-1.jsonl",
        index=0,
        produces=produces,
        run=run,
    )


def test_a_torn_line_never_swallows_the_next_entry(tmp_path, caplog):
    """A run killed mid-append leaves half a line; the next run's 'reported' line must
    still count, or a reported job could be adopted again."""
    journal = tmp_path / "journal.jsonl"
    append_journal([_entry("job-1")], journal)
    with journal.open("a") as handle:
        handle.write('{"spec": "aaaa')  # torn: no newline
    append_journal(["job-1", _entry("job-2")], journal)
    entries, exists = read_journal(journal)
    assert exists
    assert [e.batch_id for e in entries] == ["job-2"]  # job-1 was reported
    assert "ignoring 1 damaged line(s)" in caplog.text


def test_lines_written_before_produces_existed_are_read(tmp_path):
    journal = tmp_path / "journal.jsonl"
    old = {k: v for k, v in asdict(_entry("job-1")).items() if k != "produces"}
    journal.write_text(json.dumps(old) + "\n")
    (entry,) = read_journal(journal)[0]
    assert entry.batch_id == "job-1" and entry.produces == ""


def test_a_produces_that_is_no_hash_makes_the_line_damaged(tmp_path):
    journal = tmp_path / "journal.jsonl"
    append_journal([_entry("job-1", produces="../etc")], journal)
    assert read_journal(journal)[0] == []


def test_appends_are_fsynced(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    append_journal(["job-1"], tmp_path / "journal.jsonl")
    assert len(synced) == 1


def test_compaction_keeps_only_unreported_entries(tmp_path, caplog):
    journal = tmp_path / "journal.jsonl"
    append_journal([_entry("job-1"), _entry("job-2"), "job-1"], journal)
    with journal.open("a") as handle:
        handle.write("{torn")
    compact_journal(journal)
    assert journal.read_text() == json.dumps(asdict(_entry("job-2")), sort_keys=True) + "\n"
    caplog.clear()
    assert [e.batch_id for e in read_journal(journal)[0]] == ["job-2"]
    assert "damaged" not in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.jsonl"]


def test_compacting_no_journal_creates_none(tmp_path):
    compact_journal(tmp_path / "journal.jsonl")
    assert not (tmp_path / "journal.jsonl").exists()


def test_a_run_is_alive_while_it_holds_its_lock(tmp_path):
    lock = RunLock("20261206T090000-abcd1234", tmp_path)
    assert run_alive("20261206T090000-abcd1234", tmp_path)
    lock.release()
    assert not run_alive("20261206T090000-abcd1234", tmp_path)
    assert not run_alive("never-ran", tmp_path)


def test_a_run_id_from_the_journal_never_leaves_the_runs_folder(tmp_path):
    (tmp_path / "outside.lock").write_text("")
    runs = tmp_path / "runs"
    runs.mkdir()
    assert not run_alive("../outside", runs)
    append_journal([_entry("job-1", run="../outside")], tmp_path / "journal.jsonl")
    assert read_journal(tmp_path / "journal.jsonl")[0] == []
