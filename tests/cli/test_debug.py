"""``knot debug JOB``: the container of a Batch job, as ``docker run`` starts it again
(in-process moto; the e2e test in test_everyday.py runs one)."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.cli.debug import (
    DebugRun,
    batch_job_id,
    debug_run,
    job_environment,
)
from snakemake_executor_knot.errors import ConfigError

from ..conftest import IMAGE
from ..report import samples

DIGEST = "00" * 32


def with_status(monkeypatch, clients, status: str, **container) -> None:
    """Batch describes every job with ``status`` (moto's finish at once) and ``container``
    fields changed."""
    real = clients.batch.describe_jobs

    def described(**kwargs):
        found = real(**kwargs)
        for job in found["jobs"]:
            job["status"] = status
            job["container"].update(container)
        return found

    monkeypatch.setattr(clients.batch, "describe_jobs", described)


def test_a_failed_jobs_container_gets_its_spec_image_and_user(clients, batch, monkeypatch):
    job_id = batch.submit("fit-1")
    with_status(monkeypatch, clients, "FAILED")
    plan = debug_run(clients, job_id, shell=False)
    assert plan.image == IMAGE  # from its job definition: the description names none
    assert plan.job_env == {
        "KNOT_SPEC_URI": "s3://knot-bucket/specs/fit-1.jsonl",
        "KNOT_SPEC_RECORD_BYTES": "1000",
        "KNOT_SPEC_SHA256": DIGEST,
        "AWS_BATCH_JOB_ID": job_id,
    }
    assert plan.secret_env["AWS_ACCESS_KEY_ID"] and plan.secret_env["AWS_DEFAULT_REGION"]
    argv = plan.argv(shell=False, tty=False)
    assert argv[:7] == ["docker", "run", "--rm", "--network", "host", "--user", "1000"]
    assert argv[-1] == plan.image
    # The credentials go by name only: their values are in no argument.
    assert "-e" in argv and "AWS_SECRET_ACCESS_KEY" in argv
    secret = plan.secret_env["AWS_SECRET_ACCESS_KEY"]
    assert not any(secret in arg for arg in argv)


def test_an_array_child_gets_its_index_and_a_parent_is_refused(clients, batch):
    parent = batch.submit("fit-array", array_size=3)
    plan = debug_run(clients, f"{parent}:2", shell=True)
    assert plan.job_env["AWS_BATCH_JOB_ARRAY_INDEX"] == "2"
    assert plan.argv(shell=True, tty=True)[7:11] == ["-i", "-t", "--entrypoint", "/bin/sh"]
    with pytest.raises(ConfigError, match=f"array job.*knot debug {parent}:0"):
        debug_run(clients, parent, shell=False)
    with pytest.raises(ConfigError, match="no job nope.*knot jobs"):
        debug_run(clients, "nope", shell=False)


def test_a_succeeded_job_is_rerun_only_as_a_shell(clients, batch, monkeypatch):
    job_id = batch.submit("fit-done")
    with_status(monkeypatch, clients, "SUCCEEDED", image="127.0.0.1:5101/knot:abc")
    with pytest.raises(ConfigError, match="succeeded: running it again would upload"):
        debug_run(clients, job_id, shell=False)
    assert debug_run(clients, job_id, shell=True).image == "127.0.0.1:5101/knot:abc"


@pytest.mark.parametrize(
    "environment",
    [
        None,
        [{"name": "KNOT_SPEC_URI", "value": "s3://b/k; rm -rf /"}],
        [{"name": "KNOT_SPEC_URI", "value": "file:///etc/passwd"}],
        "KNOT_SPEC_URI=s3://b/k",
    ],
)
def test_a_damaged_environment_is_refused(environment):
    with pytest.raises(ConfigError, match="no usable KNOT_SPEC_URI"):
        job_environment(environment, "job-1")


def test_a_hostile_image_is_refused(clients, batch, monkeypatch):
    job_id = batch.submit("fit-bad")
    with_status(monkeypatch, clients, "FAILED", image="--privileged")
    with pytest.raises(ConfigError, match="names no usable image"):
        debug_run(clients, job_id, shell=True)


def test_a_snakemake_jobid_is_found_in_the_run_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    samples.write(tmp_path / ".snakemake" / "knot", samples.run([samples.job(7)]))
    assert batch_job_id("7", None) == "abc:7"
    assert batch_job_id("a1b2-c3:4", None) == "a1b2-c3:4"
    with pytest.raises(ConfigError, match="has no Batch job for Snakemake jobid 8"):
        batch_job_id("8", samples.RUN_ID)


def test_the_command_shows_the_jobs_variables_but_no_secret():
    plan = DebugRun(
        "j", "img:1", "1000", {"KNOT_SPEC_URI": "s3://b/k"}, {"AWS_SESSION_TOKEN": "t0ken"}
    )
    assert plan.argv(False, False) == [
        "docker", "run", "--rm", "--network", "host", "--user", "1000",
        "-e", "KNOT_SPEC_URI=s3://b/k", "-e", "AWS_SESSION_TOKEN", "img:1",
    ]  # fmt: skip
