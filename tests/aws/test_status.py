"""Batched status polling, array children, recent jobs and termination.

moto's Batch without Docker (moto.batch_simple) finishes each job inside SubmitJob:
SUCCEEDED, or FAILED when MOTO_SIMPLE_BATCH_FAIL_AFTER is set, with a log stream name but
no reason or exit code. States moto cannot produce come from botocore's Stubber."""

from __future__ import annotations

import time

import pytest
from botocore.stub import Stubber

from snakemake_executor_knot.aws.status import (
    JobState,
    StatusPoller,
    describe_exit,
    recent_jobs,
    split_child,
    terminate_jobs,
)
from snakemake_executor_knot.errors import AwsError, ConfigError


def _poll_until_finished(poller, job_ids, calls, polls: int = 40) -> dict[str, JobState]:
    """Poll as the executor does, counting the calls of the last poll only."""
    for _ in range(polls):
        calls.reset()
        states = poller.poll(job_ids)
        if all(state.finished for state in states.values()):
            return states
        time.sleep(0.05)
    pytest.fail(f"jobs not finished after {polls} polls: {states}")


def test_split_child():
    assert split_child("4c1e-77") == ("4c1e-77", None)
    assert split_child("4c1e-77:12") == ("4c1e-77", 12)
    arn = "arn:aws:batch:us-east-1:1:job/4c1e"
    assert split_child(arn) == (arn, None)
    assert split_child(arn + ":3") == (arn, 3)


def test_250_single_jobs_take_3_describe_calls_per_poll(clients, calls, batch):
    ids = [batch.submit(f"fit-{i}-j{i}") for i in range(250)]
    poller = StatusPoller(clients.batch)
    states = _poll_until_finished(poller, ids, calls)
    assert calls["batch.DescribeJobs"] == 3
    assert sum(calls.counts.values()) == 3
    assert list(states) == ids
    assert {s.status for s in states.values()} == {"SUCCEEDED"}
    assert all(states[i].job_id == i and states[i].log_stream for i in ids)


def test_array_children_are_followed_by_list_jobs(clients, calls, batch):
    parent = batch.submit("fit-array", array_size=5)
    children = [f"{parent}:{i}" for i in range(5)]
    poller = StatusPoller(clients.batch)
    states = _poll_until_finished(poller, children, calls)
    assert {k: s.status for k, s in states.items()} == dict.fromkeys(children, "SUCCEEDED")
    assert calls["batch.DescribeJobs"] == 1
    assert calls["batch.ListJobs"] == 1
    assert sum(calls.counts.values()) == 2

    calls.reset()  # nothing changed: finished children are remembered, no ListJobs
    assert poller.poll(children) == states
    assert dict(calls.counts) == {}


def test_poll_mixes_singles_parents_and_children(clients, calls, batch):
    single = batch.submit("single")
    parent = batch.submit("array", array_size=2)
    ids = [single, f"{parent}:0", parent, f"{parent}:1"]
    states = _poll_until_finished(StatusPoller(clients.batch), ids, calls)
    assert list(states) == ids
    assert all(s.status == "SUCCEEDED" for s in states.values())
    assert calls["batch.DescribeJobs"] == 1  # single and parent share one call


def test_failed_array_children_carry_their_log_streams(clients, calls, batch, monkeypatch):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto fails every job
    parent = batch.submit("fit-array", array_size=150)
    children = [f"{parent}:{i}" for i in range(150)]
    states = _poll_until_finished(StatusPoller(clients.batch), children, calls)
    assert {s.status for s in states.values()} == {"FAILED"}
    assert all(states[c].log_stream and states[c].log_stream.endswith(c) for c in children)
    # 1 for the parent, then the 150 newly failed children in chunks of 100.
    assert calls["batch.DescribeJobs"] == 3
    assert calls["batch.ListJobs"] == 1


def test_failed_job_reason_and_exit_code(clients):
    batch = clients.batch
    description = {
        "jobId": "job-1",
        "jobName": "fit-01-j1-0badc0de",
        "jobQueue": "q",
        "jobDefinition": "d",
        "startedAt": 1,
        "status": "FAILED",
        "statusReason": "Essential container in task exited",
        "container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed"},
        "attempts": [{"container": {"logStreamName": "knot/default/abc"}}],
    }
    with Stubber(batch) as stub:
        stub.add_response("describe_jobs", {"jobs": [description]}, {"jobs": ["job-1"]})
        states = StatusPoller(batch).poll(["job-1"])
    assert states["job-1"] == JobState(
        "job-1",
        "FAILED",
        "Essential container in task exited; OutOfMemoryError: Container killed",
        137,
        "knot/default/abc",
        started=0.001,
        attempts=1,
    )


def _parent(status: str, summary: dict) -> dict:
    return {
        "jobId": "p",
        "jobName": "fit",
        "jobQueue": "q",
        "jobDefinition": "d",
        "startedAt": 1,
        "status": status,
        "arrayProperties": {"statusSummary": summary, "size": 5},
    }


def _summary(job_id: str, status: str, **extra) -> dict:
    return {"jobId": job_id, "jobName": "fit", "status": status, **extra}


def test_array_progress_lists_only_statuses_whose_count_changed(clients):
    batch = clients.batch
    children = [f"p:{i}" for i in range(5)]
    poller = StatusPoller(batch)
    with Stubber(batch) as stub:
        # Poll 1: two children succeeded.
        stub.add_response(
            "describe_jobs", {"jobs": [_parent("RUNNING", {"SUCCEEDED": 2, "RUNNING": 3})]}
        )
        stub.add_response(
            "list_jobs",
            {"jobSummaryList": [_summary("p:0", "SUCCEEDED"), _summary("p:1", "SUCCEEDED")]},
            {"arrayJobId": "p", "jobStatus": "SUCCEEDED", "maxResults": 1000},
        )
        first = poller.poll(children)
        progress = dict(poller.summaries)
        # Poll 2: one failed, successes unchanged: ListJobs(FAILED) and one describe.
        stub.add_response(
            "describe_jobs",
            {"jobs": [_parent("RUNNING", {"SUCCEEDED": 2, "FAILED": 1, "RUNNING": 2})]},
        )
        failed = _summary("p:3", "FAILED", statusReason="boom", container={"exitCode": 2})
        stub.add_response(
            "list_jobs",
            {"jobSummaryList": [failed]},
            {"arrayJobId": "p", "jobStatus": "FAILED", "maxResults": 1000},
        )
        described = {**failed, "jobQueue": "q", "jobDefinition": "d", "startedAt": 1}
        described["container"] = {"exitCode": 2, "logStreamName": "knot/default/p3"}
        stub.add_response("describe_jobs", {"jobs": [described]}, {"jobs": ["p:3"]})
        second = poller.poll(children)
        # Poll 3: the parent finished, but ListJobs has not caught up with child 4 yet.
        stub.add_response(
            "describe_jobs", {"jobs": [_parent("FAILED", {"SUCCEEDED": 2, "FAILED": 1})]}
        )
        third = poller.poll(children[2:])
        stub.assert_no_pending_responses()
    assert [first[c].status for c in children] == ["SUCCEEDED"] * 2 + ["RUNNING"] * 3
    assert [second[c].status for c in children] == ["SUCCEEDED"] * 2 + [
        "RUNNING",
        "FAILED",
        "RUNNING",
    ]
    assert second["p:3"] == JobState(
        "p:3", "FAILED", "boom", 2, "knot/default/p3", started=0.001, attempts=None
    )
    assert third["p:4"].status == "RUNNING" and third["p:3"] == second["p:3"]
    # The children's counts per status, for the status cadence: they changed.
    assert progress.keys() == {"p"} and poller.summaries["p"] != progress["p"]


def test_unknown_job_is_reported_not_dropped(clients):
    states = StatusPoller(clients.batch).poll(["no-such-job", "no-such-parent:1"])
    assert states["no-such-job"].status == "UNKNOWN"
    assert "no record" in states["no-such-parent:1"].reason


def test_describe_errors_are_translated(clients):
    batch = clients.batch
    with Stubber(batch) as stub:
        stub.add_client_error("describe_jobs", "AccessDeniedException", "no", 403)
        with pytest.raises(ConfigError, match="batch:DescribeJobs"):
            StatusPoller(batch).poll(["job-1"])


# ---------------------------------------------------------------------------- log_tail


# ---------------------------------------------------------------------- terminate_jobs


def test_terminate_singles_and_array_parents_once_each(clients, calls, batch):
    single = batch.submit("single")
    parent = batch.submit("array", array_size=3)
    ids = [single, f"{parent}:0", f"{parent}:1", f"{parent}:2", single]
    calls.reset()
    assert terminate_jobs(clients.batch, ids, "cancelled by knot") == 2
    assert calls["batch.TerminateJob"] == 2
    # moto records the reason on the jobs it was asked to terminate, and only those.
    jobs = clients.batch.describe_jobs(jobs=[single, parent, f"{parent}:0"])["jobs"]
    reasons = {job["jobId"]: job.get("statusReason") for job in jobs}
    assert reasons == {
        single: "cancelled by knot",
        parent: "cancelled by knot",
        f"{parent}:0": None,
    }


def test_terminate_skips_jobs_batch_refuses(clients):
    batch = clients.batch
    with Stubber(batch) as stub:
        stub.add_client_error("terminate_job", "ClientException", "job already finished", 400)
        stub.add_response("terminate_job", {}, {"jobId": "b", "reason": "stop"})
        assert terminate_jobs(batch, ["a:0", "a:1", "b"], "stop") == 1
        stub.add_client_error("terminate_job", "AccessDeniedException", "no", 403)
        with pytest.raises(ConfigError, match="batch:TerminateJob"):
            terminate_jobs(batch, ["c"], "stop")


# ----------------------------------------------------------------------- recent jobs


def test_recent_jobs_are_the_newest_parents(clients, batch):
    first = batch.submit("fit-01-j1-0badc0de", rule="fit")
    parent = batch.submit("plot-j2-0badc0de", array_size=2, rule="plot")
    jobs = recent_jobs(clients.batch, batch.infra.job_queue_arn, limit=10, since_ms=0)
    assert [job["jobId"] for job in jobs] in ([parent, first], [first, parent])
    assert {(job["jobId"], job["jobName"], job["status"]) for job in jobs} == {
        (first, "fit-01-j1-0badc0de", "SUCCEEDED"),
        (parent, "plot-j2-0badc0de", "SUCCEEDED"),
    }
    assert len(recent_jobs(clients.batch, batch.infra.job_queue_arn, limit=1, since_ms=0)) == 1


def test_aws_errors_while_listing(clients):
    batch = clients.batch
    with Stubber(batch) as stub:
        stub.add_client_error("list_jobs", "ServerException", "oops", 500)
        with pytest.raises(AwsError, match="listing jobs in queue q"):
            recent_jobs(batch, "q", limit=5, since_ms=0)


def test_signal_exits_say_what_happened_to_the_container():
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(None) == "no exit code"
    assert describe_exit(137).startswith("exit code 137: the container was killed (SIGKILL)")
