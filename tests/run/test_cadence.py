"""knot's status-check cadence: fast while jobs move, slower while nothing changes, never
slower than Snakemake's setting, and exactly a user's own setting."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.run.cadence import SNAKEMAKE_DEFAULT_SECONDS, Cadence


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_checks_every_second_while_jobs_change(clock):
    cadence = Cadence(SNAKEMAKE_DEFAULT_SECONDS, clock)
    cadence.submitted()
    assert cadence.next_wait(active=True) == 1.0
    for second, status in enumerate(["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]):
        clock.now += 1
        cadence.observe({"job-1": status})
        assert cadence.next_wait(active=True) == 1.0, second


def test_backs_off_to_a_tenth_of_the_quiet_time_up_to_snakemakes_default(clock):
    cadence = Cadence(SNAKEMAKE_DEFAULT_SECONDS, clock)
    cadence.observe({"job-1": "RUNNING"})
    clock.now += 35
    cadence.observe({"job-1": "RUNNING"})  # no change: the quiet time keeps growing
    assert cadence.next_wait(active=True) == pytest.approx(3.5)
    clock.now += 600
    assert cadence.next_wait(active=True) == SNAKEMAKE_DEFAULT_SECONDS
    cadence.observe({"job-1": "SUCCEEDED", "job-2": "SUBMITTED"})
    assert cadence.next_wait(active=True) == 1.0


def test_a_new_submission_after_a_quiet_spell_is_checked_soon(clock):
    cadence = Cadence(SNAKEMAKE_DEFAULT_SECONDS, clock)
    clock.now += 300  # e.g. images being built before the first submission
    assert cadence.next_wait(active=False) == 1.0  # nothing to check costs no call
    cadence.submitted()
    assert cadence.next_wait(active=True) == 1.0


@pytest.mark.parametrize("seconds", [1, 3, 30])
def test_an_explicit_setting_is_kept_as_given(clock, seconds):
    cadence = Cadence(seconds, clock)
    cadence.submitted()
    assert cadence.next_wait(active=True) == seconds
    assert cadence.next_wait(active=False) == seconds
    clock.now += 1000
    assert cadence.next_wait(active=True) == seconds
