"""envvars: and --envvars through the submission path (moto in-process): the values go to
the run's secret, and no spec, SubmitJob request or job definition holds them."""

from __future__ import annotations

import json
from types import SimpleNamespace

from snakemake_executor_knot.aws.secrets import read_envvars
from snakemake_executor_knot.config.workflow import workflow_envvars
from snakemake_executor_knot.runtime.spec import fetch_spec, spec_location

from ..conftest import fake_job
from .test_executor import executor  # noqa: F401 (a fixture)

TOKEN = "tok-8f1c2e-never-in-plain-text"


def test_envvar_names_come_from_the_snakefile_and_the_command_line():
    workflow = SimpleNamespace(
        envvars={"KNOT_TEST_TOKEN"}, remote_execution_settings=SimpleNamespace(envvars=["B"])
    )
    assert workflow_envvars(workflow) == ["B", "KNOT_TEST_TOKEN"]


def test_submission_carries_the_secret_reference_and_never_the_value(executor, monkeypatch):  # noqa: F811
    monkeypatch.setenv("KNOT_TEST_TOKEN", TOKEN)
    executor.prep.workflow = SimpleNamespace(
        envvars={"KNOT_TEST_TOKEN"}, remote_execution_settings=SimpleNamespace(envvars=[])
    )
    requests = []
    executor.clients.batch.meta.events.register(
        "before-call.batch.SubmitJob", lambda params, **_: requests.append(params)
    )
    services = executor.services
    services.envvars_ref = executor.prep._store_envvars(services.infra.stack_name)
    jobs = [fake_job(rule="sample", jobid=i, output=[f"out/{i}.txt"]) for i in (1, 2)]
    executor.run_jobs(jobs)

    reference = services.envvars_ref
    assert reference["names"] == ["KNOT_TEST_TOKEN"]
    assert reference["secret"].split(":secret:")[1].startswith("knot/knot/test-run")
    assert read_envvars(executor.clients.secretsmanager, reference["secret"]) == {
        "KNOT_TEST_TOKEN": TOKEN
    }
    s3, bucket = executor.clients.s3, services.infra.bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="knot/specs/")["Contents"]]
    specs = [s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() for key in keys]
    (job,) = executor.clients.batch.describe_jobs(jobs=[ids(executor)[0]])["jobs"]
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    env["AWS_BATCH_JOB_ARRAY_INDEX"] = "1"
    assert fetch_spec(s3, spec_location(env))["envvars"] == reference
    definitions = executor.clients.batch.describe_job_definitions()["jobDefinitions"]
    jobs_seen = executor.clients.batch.list_jobs(jobQueue=services.infra.job_queue_arn)
    scanned = {
        "specs": specs,
        "SubmitJob requests": json.dumps(requests, default=str),
        "job definitions": json.dumps(definitions, default=str),
        "jobs": json.dumps(jobs_seen, default=str),
    }
    assert len(requests) == 1 and specs and definitions
    assert [where for where, text in scanned.items() if TOKEN in str(text)] == []


def ids(ex) -> list[str]:
    return [info.external_jobid.split(":")[0] for info in ex.submitted]
