"""CloudWatch Logs of Batch jobs: the tail shown when a job fails, and a whole job's log for
``knot logs``.

A job's log is whatever its code printed, so every line leaves here through ``printable``:
a terminal escape sequence in it must reach the user's terminal as text, not act on it.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError, KnotError, aws_error, error_code
from .status import TERMINAL, describe_jobs, log_stream

FOLLOW_POLL_S = 2.0  # between DescribeJobs/GetLogEvents rounds of 'knot logs --follow'
# Where AWS Batch (and moto) put job logs when the job definition names no group.
BATCH_DEFAULT_LOG_GROUP = "/aws/batch/job"


def printable(text: str) -> str:
    """``text`` with each control, format or unassigned character written as its escape
    (``\\x1b``, ``\\u202e``); tabs, spaces and printable Unicode stay as they are."""
    return text if text.isprintable() else text.translate(_ESCAPES)


class _Escapes(dict[int, str]):
    """str.translate's table, filled as characters are first seen (``printable``)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = shown = char if _shown(char) else _escaped(char)
        return shown


_ESCAPES = _Escapes()


def _shown(char: str) -> bool:
    # isprintable() also refuses spaces other than ' ' (category Zs), which act on nothing.
    return char == "\t" or char.isprintable() or unicodedata.category(char) == "Zs"


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def log_tail(logs_client, log_group: str, stream: str | None, lines: int = 30) -> list[str]:
    """The last ``lines`` messages of a CloudWatch log stream; [] if there is none."""
    if not stream:
        return []
    try:
        events = logs_client.get_log_events(
            logGroupName=log_group, logStreamName=stream, limit=lines, startFromHead=False
        )["events"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc
    return [printable(event["message"]) for event in events]


def read_last(
    logs_client, log_group: str, stream: str | None, max_bytes: int
) -> tuple[list[str], bool]:
    """The stream's last messages, oldest first, up to ``max_bytes`` of UTF-8 text (a
    newline counted after each), read backwards from the end; and whether earlier
    messages were left out. ([], False) when there is no such stream."""
    if not stream:
        return [], False
    newest_first: list[str] = []
    size, token = 0, None
    try:
        while True:
            after: dict[str, str] = {} if token is None else {"nextToken": token}
            page = logs_client.get_log_events(
                logGroupName=log_group, logStreamName=stream, startFromHead=False, **after
            )
            for event in reversed(page["events"]):
                message = printable(event["message"])
                size += len(message.encode()) + 1
                if size > max_bytes:
                    return newest_first[::-1], True
                newest_first.append(message)
            # The backward token repeats once the start of the stream is reached.
            if not page["events"] or page.get("nextBackwardToken") in (None, token):
                return newest_first[::-1], False
            token = page["nextBackwardToken"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return [], False
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc


def read_log(logs_client, log_group: str, stream: str) -> list[str] | None:
    """Every message of a log stream, oldest first; None if the stream does not exist."""
    found = read_new(logs_client, log_group, stream)
    return None if found is None else found[0]


def read_new(
    logs_client, log_group: str, stream: str, token: str | None = None
) -> tuple[list[str], str | None] | None:
    """The messages after ``token`` (from the start without one) and the token to go on
    from; None if the stream does not exist."""
    messages: list[str] = []
    token = token or None
    try:
        while True:
            after = {} if token is None else {"nextToken": token}
            page = logs_client.get_log_events(
                logGroupName=log_group, logStreamName=stream, startFromHead=True, **after
            )
            messages.extend(printable(event["message"]) for event in page["events"])
            # The forward token repeats once the end of the stream is reached.
            if not page["events"] or page.get("nextForwardToken") == token:
                return messages, page.get("nextForwardToken") or token
            token = page["nextForwardToken"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc


def _log_groups(description: dict, infra_group: str) -> list[str]:
    options = ((description.get("container") or {}).get("logConfiguration") or {}).get(
        "options"
    ) or {}
    groups = [options.get("awslogs-group"), infra_group, BATCH_DEFAULT_LOG_GROUP]
    return list(dict.fromkeys(g for g in groups if g))


def describe_one(
    batch_client, job_id: str, command: str = "logs", why: str = "its children have the logs"
) -> dict:
    """One job or array child, as ``knot <command>`` needs it (an array parent has no
    container of its own: ``why``); a ConfigError naming what to give otherwise."""
    description = describe_jobs(batch_client, [job_id]).get(job_id)
    if description is None:
        raise ConfigError(f"AWS Batch has no job {job_id}. List recent jobs with 'knot jobs'.")
    if (description.get("arrayProperties") or {}).get("size"):
        raise ConfigError(
            f"Job {job_id} is an array job; {why}. Give one child, e.g. "
            f"'knot {command} {job_id}:0'."
        )
    return description


def job_log(batch_client, logs_client, job_id: str, infra_group: str) -> list[str]:
    """The whole CloudWatch log of one job (or array child)."""
    description = describe_one(batch_client, job_id)
    stream = log_stream(description)
    if stream is None:
        raise KnotError(f"Job {job_id} has no log yet (status {description['status']}).")
    for group in _log_groups(description, infra_group):
        messages = read_log(logs_client, group, stream)
        if messages is not None:
            return messages
    raise KnotError(f"The log stream {stream} of job {job_id} no longer exists.")


class LogFollower:
    """Streams one job's log while it runs: each round describes the job once and reads the
    stream on from where the last round stopped, until the job has ended."""

    def __init__(self, batch_client, logs_client, job_id: str, infra_group: str) -> None:
        self.batch, self.logs = batch_client, logs_client
        self.job_id, self.infra_group = job_id, infra_group
        self.group: str | None = None
        self.token: str | None = None

    def follow(
        self,
        emit: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = FOLLOW_POLL_S,
    ) -> str:
        """Emit every line until the job ends; returns its final status."""
        while True:
            description = describe_one(self.batch, self.job_id)
            ended = description["status"] in TERMINAL
            stream = log_stream(description)
            if stream:
                for line in self.new_lines(description, stream):
                    emit(line)
            if ended:
                return description["status"]
            sleep(poll_s)

    def new_lines(self, description: dict, stream: str) -> list[str]:
        groups = [self.group] if self.group else _log_groups(description, self.infra_group)
        for group in groups:
            found = read_new(self.logs, group, stream, self.token)
            if found is not None:
                self.group = group
                lines, self.token = found
                return lines
        return []  # the stream appears a moment after the job starts
