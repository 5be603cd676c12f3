"""Batch's retry rules as the emulator applies them (retryStrategy and evaluateOnExit)."""

from __future__ import annotations

import random
import re

import pytest

from snakemake_executor_knot.aws.jobdef import retry_strategy
from snakemake_executor_knot.emulator.retries import (
    new_instance_id,
    pattern_matches,
    reclaim_reason,
    should_retry,
)

RECLAIM = reclaim_reason("i-0123456789abcdef0")
NONZERO = "Essential container in task exited"


def test_reclaim_reason_is_batchs_text_with_an_ec2_shaped_id():
    instance = new_instance_id(random.Random(1))
    assert re.fullmatch(r"i-[0-9a-f]{17}", instance)
    assert reclaim_reason(instance) == f"Host EC2 (instance {instance}) terminated."


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("Host EC2*", RECLAIM, True),
        ("Host EC2*", NONZERO, False),
        ("*", None, True),
        ("*", "anything", True),
        ("137", 137, True),
        ("13*", 137, True),
        ("1", 137, False),
        ("Essential container in task exited", NONZERO, True),
        ("Essential", NONZERO, False),  # no '*': the whole value
        ("x", None, False),
    ],
)
def test_patterns_match_from_the_start_with_an_optional_trailing_star(pattern, value, matches):
    assert pattern_matches(pattern, value) is matches


def test_knots_strategy_retries_reclaims_only_and_as_often_as_it_says():
    strategy = retry_strategy(spot_retries=1)
    assert should_retry(strategy, 1, status_reason=RECLAIM)
    assert not should_retry(strategy, 2, status_reason=RECLAIM)  # attempts used up
    assert not should_retry(strategy, 1, status_reason=NONZERO, exit_code=137)
    assert not should_retry(strategy, 1, status_reason=NONZERO, exit_code=1)
    assert not should_retry(strategy, 1, status_reason=None, exit_code=None)


def test_without_a_strategy_nothing_is_retried_and_unmatched_failures_are():
    assert not should_retry(None, 1, status_reason=RECLAIM)
    assert not should_retry({"attempts": 1}, 1, status_reason=RECLAIM)
    # Batch retries when no condition matches.
    only_exit_code = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "2", "action": "exit"}]}
    assert should_retry(only_exit_code, 1, status_reason=NONZERO, exit_code=1)
    assert not should_retry(only_exit_code, 1, status_reason=NONZERO, exit_code=2)
    assert should_retry({"attempts": 2}, 1, status_reason=NONZERO, exit_code=1)


def test_every_pattern_of_a_condition_must_match():
    strategy = {
        "attempts": 5,
        "evaluateOnExit": [
            {"onStatusReason": "Essential*", "onExitCode": "137", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    assert should_retry(strategy, 1, status_reason=NONZERO, exit_code=137)
    assert not should_retry(strategy, 1, status_reason=NONZERO, exit_code=1)
