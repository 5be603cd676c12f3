"""Job timelines: phases in order, partial jobs, clamping."""

from __future__ import annotations

import itertools

import pytest

from snakemake_executor_knot.report.phases import (
    PHASES,
    critical_chain,
    host_rows,
    job_segments,
    relative,
    run_origin,
    wall_time,
    where_time_went,
)
from snakemake_executor_knot.report.records import parse_run

from . import samples


def _segments(job_record: dict) -> list[tuple]:
    run = parse_run(samples.run([job_record]))
    return [tuple(s) for s in relative(job_segments(run.jobs[0]), samples.STARTED)]


def test_a_full_job_has_every_phase_in_order_with_no_gap():
    host = dict(samples.job()["host"], seen_finished=samples.STARTED + 29.6)
    segments = _segments(samples.job(host=host))
    assert segments == [
        ("submission", 1.0, 2.0),
        ("queued in Batch", 2.0, 10.0),
        ("container start", 10.0, 11.0),
        ("staging in", 11.0, pytest.approx(12.2)),
        ("running", pytest.approx(12.2), pytest.approx(27.2)),
        ("staging out", pytest.approx(27.2), pytest.approx(28.5)),
        ("finishing", pytest.approx(28.5), 29.0),
        ("status polling", 29.0, pytest.approx(29.6)),
        ("reporting", pytest.approx(29.6), 30.0),
    ]
    assert [s[0] for s in segments] == list(PHASES)
    # Each phase starts where the one before ended: the bar has no gap.
    assert all(a[2] == pytest.approx(b[1]) for a, b in itertools.pairwise(segments))


def test_reporting_does_not_count_the_status_polling():
    host = dict(samples.job()["host"], seen_finished=samples.STARTED + 29.6)
    spans = dict((s[0], s[2] - s[1]) for s in _segments(samples.job(host=host)))
    assert spans["status polling"] == pytest.approx(0.6)
    assert spans["reporting"] == pytest.approx(0.4)
    # A record without the status check's time: reporting from Batch's stop, no polling.
    old = dict((s[0], s[2] - s[1]) for s in _segments(samples.job()))
    assert "status polling" not in old and old["reporting"] == pytest.approx(1.0)


def test_the_host_rows_hold_the_preparation_and_each_built_image():
    t = samples.STARTED
    builds = [
        {"rules": ["a"], "tag": "1" * 64, "outcome": "cached"},
        {"rules": ["b", "c"], "tag": "2" * 64, "outcome": "built", "build": [t, t + 50.0],
         "push": [t + 50.0, t + 55.0], "size_bytes": 10},
    ]  # fmt: skip
    steps = {"rule plans": [t, t + 0.5], "stack check": [t + 0.5, t + 1.0]}
    run = parse_run(samples.run([samples.job()], steps=steps, image_builds=builds))
    rows = [(name, [tuple(s) for s in relative(segs, t)]) for name, segs in host_rows(run)]
    assert rows == [
        ("rule plans, stack", [("preparation", 0.0, 0.5), ("preparation", 0.5, 1.0)]),
        ("image b, c", [("image build", 0.0, 50.0), ("image push", 50.0, 55.0)]),
    ]


def test_the_wall_time_runs_from_the_process_start_to_the_end():
    t = samples.STARTED
    assert wall_time(parse_run(samples.run([samples.job()], ended=t + 40.0))) == 40.0
    run = parse_run(samples.run([samples.job()], process_started=t - 2.0, ended=t + 40.0))
    assert wall_time(run) == 42.0
    assert wall_time(parse_run(samples.run([samples.job()]))) is None


def test_a_job_that_never_started_has_only_what_is_known():
    record = samples.job(
        host={"handed_over": samples.STARTED + 1.0},
        batch={"created": samples.STARTED + 2.5, "started": samples.STARTED + 4.0},
        usage=None,
    )
    # Without host.submitted the queue starts at Batch's createdAt.
    assert _segments(record) == [("queued in Batch", 2.5, 4.0)]


def test_a_missing_duration_ends_the_container_phases():
    record = samples.job(usage={"start": samples.STARTED + 11.0, "stage_in_s": 2.0})
    phases = [s[0] for s in _segments(record)]
    assert phases == ["submission", "queued in Batch", "container start", "staging in", "reporting"]


def test_negative_durations_are_clamped_to_zero():
    # The container's clock ran behind Batch's: usage.start is before batch.started.
    usage = dict(samples.job()["usage"], start=samples.STARTED + 9.0, stage_in_s=-0.5)
    segments = dict((s[0], s[1:]) for s in _segments(samples.job(usage=usage)))
    assert segments["container start"] == (10.0, 10.0)
    assert segments["staging in"] == (9.0, 9.0)
    assert segments["running"] == (9.0, 24.0)


def test_run_origin_is_the_start_or_the_earliest_time():
    assert run_origin(parse_run(samples.run([samples.job()]))) == samples.STARTED
    unstarted = parse_run(samples.run([samples.job()], started=None))
    assert run_origin(unstarted) == samples.STARTED + 1.0


def _host(handed_over: float, submitted: float, seen: float, reported: float) -> dict:
    t = samples.STARTED
    return {"handed_over": t + handed_over, "submitted": t + submitted,
            "seen_finished": t + seen, "reported": t + reported}  # fmt: skip


def _fanin_run() -> dict:
    """Two jobs of a fan-out, then the job that reduces them, with the run's own times."""
    t = samples.STARTED
    first = samples.job(jobid=1, rule="part")  # reported at t + 30
    late = samples.job(
        jobid=2, rule="part", host=_host(1.0, 2.0, 31.5, 32.0), batch=samples.timed(10.0, 31.0)
    )
    usage = {"start": t + 36.0, "end": t + 40.0, "stage_in_s": 0.5, "run_s": 2.0,
             "stage_out_s": 0.5}  # fmt: skip
    host = _host(32.5, 33.0, 42.0, 42.2)
    reduce = samples.job(
        jobid=3, rule="total", host=host, batch=samples.timed(35.0, 41.0), usage=usage
    )
    steps = {"preparation": [t + 0.1, t + 0.9], "stack check": [t + 0.2, t + 0.5]}
    return samples.run([first, late, reduce], process_started=t - 3.0, steps=steps, ended=t + 43.0)


def test_the_critical_chain_follows_the_job_that_released_the_next():
    run = parse_run(_fanin_run())
    assert [job.jobid for job in critical_chain(run)] == [2, 3]


def test_where_the_time_went_adds_up_to_the_wall_time():
    run = parse_run(_fanin_run())
    spent = {name: seconds for name, seconds, _ in where_time_went(run)}
    assert sum(spent.values()) == pytest.approx(46.0)  # process start to the record's end
    assert spent["Snakemake start-up"] == pytest.approx(3.0)
    assert spent["stack check"] == pytest.approx(0.3)
    assert spent["knot start-up"] == pytest.approx(0.6)
    # Hand-over at 1.0 after preparation ended at 0.9; the reducer 0.5 s after the report.
    assert spent["Snakemake scheduling"] == pytest.approx(0.1 + 0.5)
    assert spent["status polling"] == pytest.approx(0.5 + 1.0)
    assert spent["rule"] == pytest.approx(15.0 + 2.0)
    assert spent["runtime checks"] == pytest.approx(1.0)  # the reducer's 4 s less 3 s measured
    assert spent["Snakemake shut-down"] == pytest.approx(0.8)


def test_where_the_time_went_takes_the_callers_launch_and_exit():
    run = parse_run(_fanin_run())
    t = samples.STARTED
    spent = dict((n, s) for n, s, _ in where_time_went(run, launched=t - 5.0, exited=t + 44.0))
    assert spent["Snakemake start-up"] == pytest.approx(5.0)
    assert spent["Snakemake shut-down"] == pytest.approx(1.8)


def test_an_old_record_without_run_times_still_splits_the_jobs():
    record = _fanin_run()
    for key in ("process_started", "steps", "ended"):
        del record[key]
    names = [name for name, _, _ in where_time_went(parse_run(record))]
    assert "Snakemake start-up" not in names and "Snakemake shut-down" not in names
    assert names[:3] == ["Snakemake scheduling", "submission", "Batch queueing"]
