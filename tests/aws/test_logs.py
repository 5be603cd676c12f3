"""CloudWatch Logs of jobs: the tail shown on failure, and a whole job's log."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.aws.logs import job_log, log_tail
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
