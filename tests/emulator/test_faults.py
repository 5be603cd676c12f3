"""The emulator's injected faults: which requests they hit, how many, and what AWS error
body they carry (pure and file-level; the end-to-end tests use them for real)."""

from __future__ import annotations

import json
import os

import pytest

from snakemake_executor_knot.emulator.faults import (
    INJECTED_FILE,
    KILL,
    RECLAIM,
    Injector,
    Switches,
    error_body,
    read_injected,
    read_switches,
    request_operation,
    write_switches,
)


def _environ(service: str, method: str = "GET", path: str = "/") -> dict:
    scope = f"Credential=testing/20261129/us-east-1/{service}/aws4_request"
    return {
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 {scope}, SignedHeaders=host",
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
    }


def test_requests_are_named_by_service_and_operation():
    assert request_operation(_environ("s3", "PUT", "/b/k")) == "s3.PUT"
    assert request_operation(_environ("batch", "POST", "/v1/submitjob")) == "batch.SubmitJob"
    assert request_operation(_environ("batch", "POST", "/v1/describejobs")) == "batch.DescribeJobs"
    assert request_operation(_environ("logs", "POST")) == "logs"
    assert request_operation({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}) is None


def _injector(tmp_path, switches: Switches) -> Injector:
    write_switches(tmp_path, switches)
    return Injector(tmp_path, reload_seconds=0.0)


def test_throttling_refuses_exactly_the_next_n_calls(tmp_path):
    injector = _injector(tmp_path, Switches(throttle={"batch.SubmitJob": 2}))
    outcomes = [injector.fault_for("batch.SubmitJob") for _ in range(4)]
    assert outcomes == [(429, "TooManyRequestsException")] * 2 + [None, None]
    assert injector.fault_for("batch.DescribeJobs") is None
    assert read_injected(tmp_path) == {"batch.SubmitJob": 2}


def test_s3_errors_hit_about_their_share_and_only_s3(tmp_path):
    injector = _injector(tmp_path, Switches(s3_error_share=0.25, s3_error_status=500, seed=7))
    faults = [injector.fault_for("s3.GET") for _ in range(2000)]
    hit = [f for f in faults if f]
    assert set(hit) == {(500, "InternalError")}
    assert 400 <= len(hit) <= 600
    assert injector.fault_for("batch.ListJobs") is None
    assert read_injected(tmp_path) == {"s3.GET": len(hit)}


def test_new_switches_start_the_counts_again(tmp_path):
    injector = _injector(tmp_path, Switches(throttle={"batch.SubmitJob": 1}))
    assert injector.fault_for("batch.SubmitJob")
    write_switches(tmp_path, Switches())
    stat = (tmp_path / "faults.json").stat()
    os.utime(tmp_path / "faults.json", (stat.st_atime, stat.st_mtime + 5))
    assert injector.fault_for("batch.SubmitJob") is None
    assert json.loads((tmp_path / INJECTED_FILE).read_text()) == {}


def test_no_switches_file_means_no_faults(tmp_path):
    injector = Injector(tmp_path)
    assert all(injector.fault_for("s3.GET") is None for _ in range(100))


@pytest.mark.parametrize(
    "bad",
    [
        {"s3_error_share": 1.5},
        {"s3_error_status": 404},
        {"throttle": {"SubmitJob": 1}},
        {"throttle": {"batch.SubmitJob": -1}},
        {"kill": {"rule name with spaces": 1}},
        {"reclaim": {"fit-*": -1}},
        {"strike_after": -1.0},
    ],
)
def test_bad_switches_are_refused(bad):
    with pytest.raises(ValueError):
        Switches(**bad)


def test_error_bodies_are_what_botocore_parses():
    xml, kind = error_body("s3.GET", 503, "SlowDown")
    assert kind == "application/xml" and b"<Code>SlowDown</Code>" in xml
    body, kind = error_body("batch.SubmitJob", 429, "TooManyRequestsException")
    assert kind == "application/json"
    assert json.loads(body)["__type"] == "TooManyRequestsException"


def test_job_faults_strike_the_next_n_matching_jobs_reclaims_first(tmp_path):
    switches = Switches(kill={"fit-*": 2}, reclaim={"fit-b-*": 1}, strike_after=0.5)
    injector = _injector(tmp_path, switches)
    names = ["mask-a-j1-x", "fit-b-j2-x", "fit-b-j3-x", "fit-a-j4-x", "fit-c-j5-x"]
    assert [injector.job_fault(n) for n in names] == [
        None,
        (RECLAIM, 0.5),
        (KILL, 0.5),
        (KILL, 0.5),
        None,
    ]
    # Nothing counts as injected until a container was really struck.
    assert read_injected(tmp_path) == {}
    injector.struck(RECLAIM)
    assert read_injected(tmp_path) == {RECLAIM: 1}


def test_job_fault_switches_survive_the_file(tmp_path):
    switches = Switches(kill={"a-*": 1}, reclaim={"b": 3}, strike_after=4.0, seed=2)
    write_switches(tmp_path, switches)
    assert read_switches(tmp_path / "faults.json") == switches
