"""CloudWatch Logs of jobs: the tail shown on failure, and a whole job's log."""

from __future__ import annotations

import time

import pytest
from botocore.stub import Stubber

from snakemake_executor_knot.aws.logs import LogFollower, job_log, log_tail, printable, read_last
from snakemake_executor_knot.errors import KnotError

from ..conftest import MOTO_LOG_GROUP, put_log


def test_log_tail_returns_the_last_lines_in_order(clients):
    put_log(clients, "/knot/jobs", "knot/default/abc", [f"line {i}" for i in range(50)])
    tail = log_tail(clients.logs, "/knot/jobs", "knot/default/abc", lines=30)
    assert tail == [f"line {i}" for i in range(20, 50)]


def test_log_tail_of_a_missing_stream_is_empty(clients):
    put_log(clients, "/knot/jobs", "other", ["x"])
    assert log_tail(clients.logs, "/knot/jobs", "knot/default/none") == []
    assert log_tail(clients.logs, "/no/group", "s") == []
    assert log_tail(clients.logs, "/knot/jobs", None) == []


def test_job_log_reads_the_stream_where_it_is(clients, batch):
    parent = batch.submit("fit-array", array_size=2)
    child = f"{parent}:1"
    stream = clients.batch.describe_jobs(jobs=[child])["jobs"][0]["container"]["logStreamName"]
    put_log(clients, MOTO_LOG_GROUP, stream, ["hello", "world"])
    # knot's group lacks the stream (moto logs to its own group), so the fallback is used.
    assert job_log(clients.batch, clients.logs, child, "/knot/jobs") == ["hello", "world"]
    with pytest.raises(KnotError, match=f"array job.*knot logs {parent}:0"):
        job_log(clients.batch, clients.logs, parent, "/knot/jobs")
    with pytest.raises(KnotError, match="no job nope.*knot jobs"):
        job_log(clients.batch, clients.logs, "nope", "/knot/jobs")


def _described(status: str, stream: str | None = "knot/default/run1") -> dict:
    job = {"jobId": "j1", "jobName": "fit", "jobQueue": "q", "jobDefinition": "d", "startedAt": 1}
    job["status"] = status
    if stream:
        job["container"] = {"logStreamName": stream}
    return job


def test_follow_streams_new_lines_until_the_job_ends(clients):
    put_log(clients, "/knot/jobs", "knot/default/run1", ["one", "two"])
    seen: list[str] = []
    rounds = iter([["three"], []])

    def sleep(_seconds):  # the job writes more while the follower waits
        lines = next(rounds)
        if lines:
            now = int(time.time() * 1000) + 10
            clients.logs.put_log_events(
                logGroupName="/knot/jobs", logStreamName="knot/default/run1",
                logEvents=[{"timestamp": now, "message": m} for m in lines],
            )  # fmt: skip

    with Stubber(clients.batch) as stub:
        stub.add_response("describe_jobs", {"jobs": [_described("RUNNABLE", None)]})
        stub.add_response("describe_jobs", {"jobs": [_described("RUNNING")]})
        stub.add_response("describe_jobs", {"jobs": [_described("SUCCEEDED")]})
        follower = LogFollower(clients.batch, clients.logs, "j1", "/knot/jobs")
        status = follower.follow(seen.append, sleep=sleep, poll_s=0)
    assert status == "SUCCEEDED"
    assert seen == ["one", "two", "three"]  # each line once, in order


def test_follow_of_an_unknown_job_is_a_clear_error(clients):
    with pytest.raises(KnotError, match="no job nope.*knot jobs"):
        LogFollower(clients.batch, clients.logs, "nope", "/knot/jobs").follow(print)


def test_follow_of_an_ended_job_prints_its_log_and_returns(clients):
    put_log(clients, "/knot/jobs", "knot/default/run1", ["a", "b"])
    seen: list[str] = []
    with Stubber(clients.batch) as stub:
        stub.add_response("describe_jobs", {"jobs": [_described("FAILED")]})
        follower = LogFollower(clients.batch, clients.logs, "j1", "/knot/jobs")
        assert follower.follow(seen.append, sleep=lambda s: pytest.fail("slept")) == "FAILED"
    assert seen == ["a", "b"]


# ---------------------------------------------------------------- escape sequences in logs

HOSTILE_LINE = "ok\t\x1b]0;owned\x07\x1b[2J\r\u202eé 日本 \u00a0end"
ESCAPED_LINE = "ok\t\\x1b]0;owned\\x07\\x1b[2J\\x0d\\u202eé 日本 \u00a0end"


def test_printable_escapes_control_characters_and_keeps_text():
    assert printable(HOSTILE_LINE) == ESCAPED_LINE
    assert printable("plain line") == "plain line"
    assert printable("a\nb\x00\U000e0001") == "a\\x0ab\\x00\\U000e0001"


def test_log_tail_and_whole_log_come_back_escaped(clients, batch):
    put_log(clients, "/knot/jobs", "knot/default/abc", ["before", HOSTILE_LINE])
    assert log_tail(clients.logs, "/knot/jobs", "knot/default/abc") == ["before", ESCAPED_LINE]
    job = batch.submit("fit-01-j1-0badc0de")
    stream = clients.batch.describe_jobs(jobs=[job])["jobs"][0]["container"]["logStreamName"]
    put_log(clients, MOTO_LOG_GROUP, stream, [HOSTILE_LINE])
    assert job_log(clients.batch, clients.logs, job, "/knot/jobs") == [ESCAPED_LINE]
    seen: list[str] = []
    LogFollower(clients.batch, clients.logs, job, "/knot/jobs").follow(seen.append)
    assert seen == [ESCAPED_LINE]


def test_read_last_keeps_the_whole_log_under_the_cap(clients):
    lines = [f"line {i}" for i in range(120)]
    put_log(clients, "/knot/jobs", "knot/default/abc", lines)
    assert read_last(clients.logs, "/knot/jobs", "knot/default/abc", 10_000) == (lines, False)


def test_read_last_keeps_the_end_of_a_log_over_the_cap(clients):
    lines = [f"line {i:03d}" for i in range(100)]  # 9 bytes each, with its newline
    put_log(clients, "/knot/jobs", "knot/default/abc", lines)
    kept, cut = read_last(clients.logs, "/knot/jobs", "knot/default/abc", 9 * 40 + 5)
    assert cut and kept == lines[-40:]


def test_read_last_of_no_stream_is_empty(clients):
    assert read_last(clients.logs, "/knot/jobs", "nothing", 100) == ([], False)
    assert read_last(clients.logs, "/knot/jobs", None, 100) == ([], False)
