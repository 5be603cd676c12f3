"""The Batch patches' pure rules: a job's environment, log target, requirements and
outcome, and the SubmitJob limits AWS enforces."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.emulator.patches import batch


def test_job_environment_adds_what_aws_gives_and_keeps_the_jobs_own():
    env = batch.job_environment(
        {"KNOT_SPEC_URI": "s3://b/k", "AWS_REGION": "eu-west-1", "AWS_BATCH_JOB_ID": "x"},
        endpoint="http://127.0.0.1:9",
        region="us-east-1",
        job_id="abc:2",
        queue="q",
        array_index=2,
    )
    assert env["KNOT_SPEC_URI"] == "s3://b/k"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert env["AWS_REGION"] == "eu-west-1"  # the job's own value wins
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_BATCH_JOB_ID"] == "abc:2"  # reserved: Batch's value wins
    assert env["AWS_BATCH_JOB_ARRAY_INDEX"] == "2"
    assert env["AWS_BATCH_JQ_NAME"] == "q"


def test_job_environment_has_no_array_index_outside_arrays():
    env = batch.job_environment({}, endpoint="e", region="r", job_id="j", queue="q")
    assert "AWS_BATCH_JOB_ARRAY_INDEX" not in env


def test_merged_environment_lets_overrides_win_without_mutating():
    definition = [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}]
    override = [{"name": "B", "value": "2"}]
    merged = batch.merged_environment(definition, override, "job:0")
    assert {e["name"]: e["value"] for e in merged} == {
        "A": "1",
        "B": "2",
        "AWS_BATCH_JOB_ID": "job:0",
    }
    assert override == [{"name": "B", "value": "2"}]
    assert len(definition) == 2


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (
            {
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": "/knot/jobs", "awslogs-stream-prefix": "knot"},
                }
            },
            ("/knot/jobs", "knot/default/id-3"),
        ),
        (
            {"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/g"}}},
            ("/g", "jd/default/id-3"),
        ),
        ({"logConfiguration": {"logDriver": "json-file"}}, ("/aws/batch/job", "jd/default/id-3")),
        (None, ("/aws/batch/job", "jd/default/id-3")),
    ],
)
def test_log_target_follows_the_awslogs_configuration(properties, expected):
    assert batch.log_target(properties, "jd", "id:3") == expected


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        (["SUCCEEDED", "SUCCEEDED"], "SUCCEEDED"),
        (["SUCCEEDED", "FAILED"], "FAILED"),
        (["RUNNING", "FAILED"], None),
        (["SUBMITTED", None], None),
    ],
)
def test_array_outcome(statuses, outcome):
    assert batch.array_outcome(statuses) == outcome


def test_merged_requirements_let_overrides_replace_their_type_only():
    definition = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]
    overrides = [{"type": "MEMORY", "value": "4000"}]
    assert batch.merged_requirements(definition, overrides) == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "4000"},
    ]
    assert batch.merged_requirements(definition, []) == definition
    assert definition[1]["value"] == "2048"  # not mutated


def test_submit_problem_enforces_aws_limits():
    assert batch.submit_problem({"size": 2}, {"environment": []}) is None
    assert batch.submit_problem({}, None) is None
    assert "between 2 and 10000" in batch.submit_problem({"size": 1}, None)
    assert "between 2 and 10000" in batch.submit_problem({"size": 10_001}, None)
    big = {"environment": [{"name": "X", "value": "y" * 8200}]}
    assert "8192" in batch.submit_problem({}, big)
