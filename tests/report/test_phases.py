"""Job timelines: phases in order, partial jobs, clamping."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.report.phases import PHASES, job_segments, relative, run_origin
from snakemake_executor_knot.report.records import parse_run

from . import samples


def _segments(job_record: dict) -> list[tuple]:
    run = parse_run(samples.run([job_record]))
    return [tuple(s) for s in relative(job_segments(run.jobs[0]), samples.STARTED)]


def test_a_full_job_has_every_phase_in_order():
    assert _segments(samples.job()) == [
        ("waiting on host", 1.0, 2.0),
        ("queued in Batch", 2.0, 10.0),
        ("starting", 10.0, 11.0),
        ("staging in", 11.0, pytest.approx(12.2)),
        ("running", pytest.approx(12.2), pytest.approx(27.2)),
        ("staging out", pytest.approx(27.2), pytest.approx(28.5)),
        ("reporting", 29.0, 30.0),
    ]
    assert [s[0] for s in _segments(samples.job())] == list(PHASES)


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
    assert phases == ["waiting on host", "queued in Batch", "starting", "staging in", "reporting"]


def test_negative_durations_are_clamped_to_zero():
    # The container's clock ran behind Batch's: usage.start is before batch.started.
    usage = dict(samples.job()["usage"], start=samples.STARTED + 9.0, stage_in_s=-0.5)
    segments = dict((s[0], s[1:]) for s in _segments(samples.job(usage=usage)))
    assert segments["starting"] == (10.0, 10.0)
    assert segments["staging in"] == (9.0, 9.0)
    assert segments["running"] == (9.0, 24.0)


def test_run_origin_is_the_start_or_the_earliest_time():
    assert run_origin(parse_run(samples.run([samples.job()]))) == samples.STARTED
    unstarted = parse_run(samples.run([samples.job()], started=None))
    assert run_origin(unstarted) == samples.STARTED + 1.0
