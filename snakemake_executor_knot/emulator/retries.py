"""AWS Batch's retry rules, which moto ignores: a failed attempt is tried again while the
job definition's ``retryStrategy`` allows it. Pure; ``lifecycle`` wires it into moto.

What Batch does (API reference, RetryStrategy and EvaluateOnExit):
- ``attempts`` (1-10, default 1) bounds the attempts of a job, the first included;
- the ``evaluateOnExit`` conditions are read in order and the first whose every given
  pattern matches decides (RETRY or EXIT, in any case); when none matches, the job is
  retried;
- a pattern matches from the start of the value and may end with '*', which matches any
  rest; a value the attempt lacks (no exit code after a reclaim) counts as empty, so
  '*' matches it and nothing else does;
- a job ended by TerminateJob or CancelJob is never retried.
"""

from __future__ import annotations

import random

# Batch's statusReason when the instance under a job went away (a spot reclaim).
HOST_TERMINATED = "Host EC2 (instance {}) terminated."


def reclaim_reason(instance_id: str) -> str:
    return HOST_TERMINATED.format(instance_id)


def new_instance_id(rng: random.Random | None = None) -> str:
    """An id shaped like EC2's: 'i-' and 17 hex digits."""
    return "i-" + "".join((rng or random).choice("0123456789abcdef") for _ in range(17))


def pattern_matches(pattern: str, value: str | int | None) -> bool:
    text = "" if value is None else str(value)
    if pattern.endswith("*"):
        return text.startswith(pattern[:-1])
    return text == pattern


def condition_matches(
    condition: dict, status_reason: str | None, reason: str | None, exit_code: int | None
) -> bool:
    found = {"onStatusReason": status_reason, "onReason": reason, "onExitCode": exit_code}
    return all(
        pattern_matches(str(condition[field]), value)
        for field, value in found.items()
        if condition.get(field) is not None
    )


def should_retry(
    strategy: dict | None,
    attempts_made: int,
    *,
    status_reason: str | None,
    reason: str | None = None,
    exit_code: int | None = None,
) -> bool:
    """Whether Batch starts another attempt after a failed one."""
    strategy = strategy or {}
    if attempts_made >= int(strategy.get("attempts") or 1):
        return False
    for condition in strategy.get("evaluateOnExit") or []:
        if condition_matches(condition, status_reason, reason, exit_code):
            return str(condition.get("action", "")).upper() == "RETRY"
    return True
