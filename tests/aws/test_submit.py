"""The SubmitJob request, and the rate-limited, throttling-aware
submitter (moto for real submissions, Stubber for throttling, a fake clock for rates)."""

from __future__ import annotations

import json
import threading

import pytest
from botocore.stub import Stubber

from snakemake_executor_knot.aws.submit import Submitter, TokenBucket, build_submit_request
from snakemake_executor_knot.compute.resources import BatchResources
from snakemake_executor_knot.errors import AwsError, ConfigError, RuleError

SPEC = "s3://knot-bucket/specs/run-1/fit-3.jsonl"
ARN = "arn:aws:batch:us-east-1:123456789012:job-definition/knot-0123456789abcdef:1"
QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/knot"


# ------------------------------------------------------------------- build_submit_request

DIGEST = "5e" * 32


def _request(**overrides):
    kwargs = dict(
        job_name="fit-01-j3-0badc0de",
        job_definition_arn=ARN,
        job_queue=QUEUE,
        spec_uri=SPEC,
        spec_record_bytes=1200,
        spec_digest=DIGEST,
        resources=BatchResources(2, 4000, 0, None),
        rule="fit",
    )
    return build_submit_request(**{**kwargs, **overrides})


def test_single_job_request():
    assert _request(tags={"team": "neuro"}) == {
        "jobName": "fit-01-j3-0badc0de",
        "jobQueue": QUEUE,
        "jobDefinition": ARN,
        "containerOverrides": {
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"},
                {"type": "MEMORY", "value": "4000"},
            ],
            "environment": [
                {"name": "KNOT_SPEC_URI", "value": SPEC},
                {"name": "KNOT_SPEC_RECORD_BYTES", "value": "1200"},
                {"name": "KNOT_SPEC_SHA256", "value": DIGEST},
            ],
        },
        "tags": {"team": "neuro", "knot:rule": "fit"},
        "propagateTags": True,
    }


def test_array_job_with_gpu_and_timeout():
    request = _request(resources=BatchResources(8, 30000, 2, 3600), array_size=40)
    assert request["arrayProperties"] == {"size": 40}
    assert request["timeout"] == {"attemptDurationSeconds": 3600}
    assert request["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "8"},
        {"type": "MEMORY", "value": "30000"},
        {"type": "GPU", "value": "2"},
    ]


def test_array_of_one_is_a_single_job():
    assert "arrayProperties" not in _request(array_size=1)
    assert _request(array_size=10_000)["arrayProperties"] == {"size": 10_000}


@pytest.mark.parametrize("size", [0, 10_001])
def test_array_size_out_of_range(size):
    with pytest.raises(ValueError, match="between 1 and 10000"):
        _request(array_size=size)


def test_overrides_over_the_aws_limit_name_the_rule():
    with pytest.raises(RuleError, match="Rule 'fit'.*8192"):
        _request(spec_uri="s3://b/" + "k" * 8200)
    ok = _request(spec_uri="s3://b/" + "k" * 7800)
    assert len(json.dumps(ok["containerOverrides"])) < 8192


# -------------------------------------------------------------------------- TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_spaces_calls_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=20, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(41):
        bucket.acquire()
        times.append(clock.now)
    assert times[0] == 100.0  # the first call does not wait
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap == pytest.approx(0.05) for gap in gaps)
    assert times[-1] - times[0] == pytest.approx(2.0)  # 40 further calls at 20/s


def test_token_bucket_refills_while_idle_but_does_not_save_up_a_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    clock.now += 60  # a minute idle
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.1)  # capacity 1: no burst after idling


def test_token_bucket_gives_each_thread_its_own_slot():
    clock = FakeClock()  # frozen: every wait comes from reservations alone
    bucket = TokenBucket(rate=20, clock=clock, sleep=clock.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(25):
            wait = bucket.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([i * 0.05 for i in range(100)])


# --------------------------------------------------------------------------- Submitter


def _stubbed_submitter(clients, clock, **kwargs):
    batch = clients.batch
    submitter = Submitter(batch, rate=10, clock=clock, sleep=clock.sleep, rng=lambda: 1.0, **kwargs)
    return batch, submitter


def test_retries_after_throttling(clients):
    clock = FakeClock()
    batch, submitter = _stubbed_submitter(clients, clock)
    request = _request()
    with Stubber(batch) as stub:
        stub.add_client_error("submit_job", "TooManyRequestsException", "slow down", 429)
        stub.add_client_error("submit_job", "ThrottlingException", "slow down", 400)
        stub.add_response(
            "submit_job",
            {"jobId": "job-1", "jobName": request["jobName"], "jobArn": "arn:x"},
            expected_params=request,
        )
        assert submitter.submit(request) == "job-1"
        stub.assert_no_pending_responses()
    # Two exponential backoffs (0.5 s, then 1 s with rng=1); they outlast the 0.1 s
    # spacing of the 10/s bucket, so it adds no wait of its own.
    assert clock.slept == [0.5, 1.0]


def test_gives_up_after_bounded_throttling(clients):
    clock = FakeClock()
    batch, submitter = _stubbed_submitter(clients, clock, max_attempts=3)
    with Stubber(batch) as stub:
        for _ in range(3):
            stub.add_client_error("submit_job", "TooManyRequestsException", "slow down", 429)
        with pytest.raises(AwsError, match="throttling.*fit.*--knot-submit-rate"):
            submitter.submit(_request())
        stub.assert_no_pending_responses()


def test_other_errors_are_translated_with_the_rule(clients):
    clock = FakeClock()
    batch, submitter = _stubbed_submitter(clients, clock)
    with Stubber(batch) as stub:
        stub.add_client_error("submit_job", "ClientException", "Job queue knot missing", 400)
        with pytest.raises(AwsError, match="rule 'fit'.*ClientException: Job queue knot missing"):
            submitter.submit(_request())
        stub.add_client_error("submit_job", "AccessDeniedException", "no", 403)
        with pytest.raises(ConfigError, match="batch:SubmitJob"):
            submitter.submit(_request())


def test_submissions_keep_to_the_rate(clients):
    clock = FakeClock()
    batch, submitter = _stubbed_submitter(clients, clock)
    with Stubber(batch) as stub:
        for i in range(11):
            stub.add_response("submit_job", {"jobId": f"j{i}", "jobName": "n", "jobArn": "a"})
        ids = [submitter.submit(_request()) for _ in range(11)]
    assert ids == [f"j{i}" for i in range(11)]
    assert clock.now - 100.0 == pytest.approx(1.0)  # 10 waits of 0.1 s at 10/s


def _queue(clients) -> str:
    role = clients.iam.create_role(
        RoleName="batch-service", AssumeRolePolicyDocument="{}", Path="/"
    )["Role"]["Arn"]
    env = clients.batch.create_compute_environment(
        computeEnvironmentName="knot-test", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    return clients.batch.create_job_queue(
        jobQueueName="knot-test",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
    )["jobQueueArn"]


def test_submits_to_batch(clients, calls):
    queue = _queue(clients)
    definition = clients.batch.register_job_definition(
        jobDefinitionName="knot-test",
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128},
    )["jobDefinitionArn"]
    request = _request(job_queue=queue, job_definition_arn=definition, array_size=3)
    job_id = Submitter(clients.batch).submit(request)
    job = clients.batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["jobName"] == "fit-01-j3-0badc0de"
    assert job["tags"] == {"knot:rule": "fit"}
    assert {"name": "KNOT_SPEC_URI", "value": SPEC} in job["container"]["environment"]
    assert {"name": "KNOT_SPEC_RECORD_BYTES", "value": "1200"} in job["container"]["environment"]
    assert {"name": "KNOT_SPEC_SHA256", "value": DIGEST} in job["container"]["environment"]
    assert job["arrayProperties"]["size"] == 3
    assert calls["batch.SubmitJob"] == 1


def test_a_class_with_a_cache_tells_its_jobs_where_and_how_large():
    environment = _request(cache_bytes=200 * 1024**3)["containerOverrides"]["environment"]
    assert environment[3:] == [
        {"name": "KNOT_CACHE_DIR", "value": "/knot-cache"},
        {"name": "KNOT_CACHE_BYTES", "value": str(200 * 1024**3)},
    ]
    plain = _request(cache_bytes=0)["containerOverrides"]["environment"]
    assert [e["name"] for e in plain] == [
        "KNOT_SPEC_URI",
        "KNOT_SPEC_RECORD_BYTES",
        "KNOT_SPEC_SHA256",
    ]
