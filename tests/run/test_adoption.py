"""Never a stale or overwritten result, against in-process moto: a job whose inputs changed
is not adopted and the earlier job is terminated; an earlier job whose outputs this run
does not make is terminated at start-up; a torn journal line never lets a reported job be
adopted again; an adopted job's directory output is left alone."""

from __future__ import annotations

import logging
import os

import pytest
from moto.batch.models import batch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from snakemake.io import directory

from snakemake_executor_knot.run.adoption import job_produces, spec_produces
from snakemake_executor_knot.run.journal import RunLock, read_journal

from ..conftest import REGION, fake_job
from .test_executor import _job, _next_run, executor  # noqa: F401 (a fixture)


def _moto_jobs() -> dict:
    return batch_backends[DEFAULT_ACCOUNT_ID][REGION]._jobs


def _keep_running(ids) -> None:
    """In-process moto finishes every job at once; these stay active, as a job does
    that a killed Snakemake left behind."""
    jobs = _moto_jobs()
    for job_id in ids:
        jobs[job_id].status = "RUNNING"
        jobs[job_id.split(":")[0]].status = "RUNNING"


def _terminated(job_id: str) -> bool:
    return bool(_moto_jobs()[job_id].stop)


def _reader(jobid: int = 1):
    return fake_job(
        rule="b", jobid=jobid, input=["raw.txt"], output=["out.txt"], config={"seed": 1}
    )


@pytest.fixture
def reader_plan(executor):  # noqa: F811
    executor.prep.plans["b"] = executor.prep.plans["sample"]
    return executor


def _batch_calls(ex) -> list[str]:
    order: list[str] = []
    ex.clients.batch.meta.events.register(
        "before-call.batch.*", lambda event_name, **_: order.append(event_name.split(".")[-1])
    )
    return order


def test_changed_input_is_not_adopted_and_the_earlier_job_is_terminated(
    reader_plan, tmp_path, calls, caplog
):
    (tmp_path / "raw.txt").write_text("old\n")
    reader_plan.run_jobs([_reader()])
    (old,) = [info.external_jobid for info in reader_plan.submitted]
    _keep_running([old])
    (tmp_path / "raw.txt").write_text("new\n")  # edited while the job ran
    rerun = _next_run(reader_plan)
    order = _batch_calls(rerun)
    caplog.set_level(logging.INFO, logger="knot")
    rerun.run_jobs([_reader(jobid=5)])
    assert [job.adopted for job in rerun.run_log.jobs.values()] == [False]
    assert _terminated(old)
    assert order.index("TerminateJob") < order.index("SubmitJob")
    (line,) = [r.getMessage() for r in caplog.records if old in r.getMessage()]
    assert line.startswith(f"knot: rule b, jobid 5: terminated Batch job {old}")
    assert "inputs or params changed" in line
    # The new job's spec names what it reads: the object holding the new bytes.
    spec = rerun.submitted[0].aux["spec"]
    (item,) = spec["input"]["items"]
    etag = rerun.clients.s3.head_object(
        Bucket=rerun.services.staging.bucket, Key=rerun.services.staging.key_for("raw.txt")
    )["ETag"]
    assert item["identity"] == f"etag:{etag}"


@pytest.mark.parametrize("rewrite", [False, True], ids=["untouched", "same-bytes-rewritten"])
def test_unchanged_input_is_adopted(reader_plan, tmp_path, calls, rewrite):
    (tmp_path / "raw.txt").write_text("same\n")
    reader_plan.run_jobs([_reader()])
    (old,) = [info.external_jobid for info in reader_plan.submitted]
    _keep_running([old])
    if rewrite:  # a new mtime, so a new upload; the ETag follows the bytes
        (tmp_path / "raw.txt").write_text("same\n")
        new_stamp = (tmp_path / "raw.txt").stat().st_mtime_ns + 10**9
        os.utime(tmp_path / "raw.txt", ns=(new_stamp, new_stamp))
    rerun = _next_run(reader_plan)
    calls.reset()
    rerun.run_jobs([_reader(jobid=5)])
    assert calls["batch.SubmitJob"] == 0 and calls["batch.TerminateJob"] == 0
    assert [info.external_jobid for info in rerun.submitted] == [old]
    # Only the rewritten file goes up again, besides the run's config object (written once
    # per run, which keeps it from expiring while jobs read it: jobs/config.py).
    assert calls["s3.PutObject"] == int(rewrite) + 1


def test_start_up_terminates_earlier_jobs_whose_outputs_this_run_does_not_make(
    executor,  # noqa: F811
    calls,
    caplog,
):
    executor.run_jobs([_job(1), _job(2)])  # one array job: children :0 and :1
    ids = [info.external_jobid for info in executor.submitted]
    _keep_running(ids)
    rerun = _next_run(executor)
    caplog.set_level(logging.INFO, logger="knot")
    again = fake_job(
        rule="sample", jobid=7, output=["out/1.txt"], wildcards={"chunk": "1"},
        resources={"mem_mb": 1000}, config={"seed": 1},
    )  # fmt: skip
    rerun._sweep([again])  # this run makes out/1.txt only (its jobid is 7 now)
    assert _terminated(ids[1]) and not _terminated(ids[0])  # the child alone
    (line,) = [r.getMessage() for r in caplog.records if "terminated" in r.getMessage()]
    assert line.startswith(f"knot: rule sample: terminated Batch job {ids[1]}, left running")
    # The surviving child is still adopted.
    calls.reset()
    rerun.run_jobs([again])
    assert calls["batch.SubmitJob"] == 0
    assert [info.external_jobid for info in rerun.submitted] == [ids[0]]


def test_start_up_leaves_the_jobs_of_a_run_still_alive_alone(executor, tmp_path):  # noqa: F811
    """Another Snakemake in this folder, with other targets, still runs: its jobs are its."""
    executor.run_jobs([_job(1)])
    (old,) = [info.external_jobid for info in executor.submitted]
    _keep_running([old])
    lock = RunLock("test-run", tmp_path / ".snakemake" / "knot" / "runs")
    _next_run(executor)._sweep([])
    assert not _terminated(old)
    lock.release()  # that run ended (or died)
    _next_run(executor)._sweep([])
    assert _terminated(old)


def test_a_new_job_supersedes_an_earlier_one_that_makes_the_same_files(executor, calls):  # noqa: F811
    executor.run_jobs([_job(1)])
    (old,) = [info.external_jobid for info in executor.submitted]
    _keep_running([old])
    rerun = _next_run(executor)
    changed = fake_job(
        rule="sample", jobid=1, output=["out/1.txt"], wildcards={"chunk": "1"},
        resources={"mem_mb": 1000}, config={"seed": 2},
    )  # fmt: skip
    rerun.run_jobs([changed])
    assert calls["batch.SubmitJob"] == 2 and _terminated(old)


def test_finished_earlier_jobs_are_left_alone(executor, calls):  # noqa: F811
    executor.run_jobs([_job(1)])  # moto: SUCCEEDED at once
    rerun = _next_run(executor)
    rerun._sweep([])
    assert calls["batch.TerminateJob"] == 0


def test_a_torn_line_does_not_let_forceall_adopt_a_reported_job(executor, calls, tmp_path):  # noqa: F811
    """Run 1 submits and is killed mid-append; run 2 adopts and reports the job; run 3
    (--forceall) must run it anew, not hand back run 1's result."""
    executor.run_jobs([_job(1)])
    journal = tmp_path / ".snakemake" / "knot" / "journal.jsonl"
    with journal.open("a") as handle:
        handle.write('{"spec": "0123')  # the kill
    second = _next_run(executor)
    second.run_jobs([_job(1)])
    assert all(job.adopted for job in second.run_log.jobs.values())
    second.services.adopter.record([info.external_jobid for info in second.submitted])
    third = _next_run(second)
    calls.reset()
    third.run_jobs([_job(1)])
    assert calls["batch.SubmitJob"] == 1


def test_end_of_run_compacts_the_journal(executor, tmp_path):  # noqa: F811
    executor.run_jobs([_job(1), _job(3, mem_mb=4000)])
    done = executor.submitted[0].external_jobid
    executor.services.adopter.record([done])
    executor.services.adopter.compact()
    entries, _ = read_journal(tmp_path / ".snakemake" / "knot" / "journal.jsonl")
    assert [e.batch_id for e in entries] == [executor.submitted[1].external_jobid]
    assert len((tmp_path / ".snakemake" / "knot" / "journal.jsonl").read_text().splitlines()) == 1


def test_an_adopted_jobs_directory_output_is_not_cleared(executor, tmp_path):  # noqa: F811
    def job(jobid: int):
        return fake_job(rule="sample", jobid=jobid, output=[directory("res/tree")])

    executor.run_jobs([job(1)])
    _keep_running([executor.submitted[0].external_jobid])
    (tmp_path / "res" / "tree").mkdir(parents=True)
    (tmp_path / "res" / "tree" / "part.txt").write_text("being written")
    rerun = _next_run(executor)
    rerun.run_jobs([job(4)])
    assert all(j.adopted for j in rerun.run_log.jobs.values())
    assert (tmp_path / "res" / "tree" / "part.txt").exists()


def test_a_jobs_produces_hash_equals_its_specs(executor):  # noqa: F811
    job = fake_job(rule="sample", jobid=3, output=["a.txt", directory("d")], log=["l.txt"])
    executor.run_jobs([job])
    spec = executor.submitted[0].aux["spec"]
    uri_for = executor.services.staging.uri_for
    assert spec_produces(spec) == job_produces(job, uri_for)
    other = fake_job(rule="sample", jobid=3, output=["a.txt", directory("d")], log=["m.txt"])
    assert job_produces(other, uri_for) != job_produces(job, uri_for)
