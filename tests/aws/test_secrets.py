"""The envvars secret store (moto in-process): one secret per run, named and tagged under
the stack, read back by the runtime, and deleted per run or per stack."""

from __future__ import annotations

import json

import pytest

from snakemake_executor_knot.aws.secrets import (
    delete_secret,
    delete_stack_secrets,
    envvar_reference,
    read_envvars,
    secret_name,
    stack_secrets,
    store_envvars,
)
from snakemake_executor_knot.errors import AwsError
from snakemake_executor_knot.runtime import envvars as runtime_envvars
from snakemake_executor_knot.runtime.report import JobFailure

VALUES = {"KNOT_TEST_TOKEN": "s3cr3t-value", "OTHER": "two"}


def test_store_names_and_tags_the_secret_under_the_stack(clients):
    arn = store_envvars(clients.secretsmanager, "knot", "run-1", VALUES)
    described = clients.secretsmanager.describe_secret(SecretId=arn)
    assert described["Name"] == secret_name("knot", "run-1") == "knot/knot/run-1"
    assert {"Key": "knot:stack", "Value": "knot"} in described["Tags"]
    assert read_envvars(clients.secretsmanager, "knot/knot/run-1") == VALUES


def test_storing_again_under_the_same_run_replaces_the_values(clients):
    first = store_envvars(clients.secretsmanager, "knot", "run-1", {"A": "1"})
    second = store_envvars(clients.secretsmanager, "knot", "run-1", {"A": "2"})
    assert first == second
    assert read_envvars(clients.secretsmanager, first) == {"A": "2"}


def test_delete_removes_at_once_and_tolerates_a_missing_secret(clients):
    arn = store_envvars(clients.secretsmanager, "knot", "run-1", VALUES)
    delete_secret(clients.secretsmanager, arn)
    delete_secret(clients.secretsmanager, arn)  # the end of a run after `infra down`
    with pytest.raises(AwsError, match="reading the envvars secret"):
        read_envvars(clients.secretsmanager, arn)


def test_delete_by_stack_takes_only_that_stacks_tagged_secrets(clients):
    sm = clients.secretsmanager
    ours = [store_envvars(sm, "knot", f"run-{i}", VALUES) for i in range(3)]
    other = store_envvars(sm, "knot-dev", "run-1", VALUES)
    # Named like ours, but not tagged by knot; and a user's secret.
    untagged = sm.create_secret(Name="knot/knot/by-hand", SecretString="{}")["ARN"]
    user = sm.create_secret(Name="db-password", SecretString="x")["ARN"]
    assert sorted(stack_secrets(sm, "knot")) == sorted(ours)
    deleted = delete_stack_secrets(sm, "knot")
    assert sorted(deleted) == sorted(f"secret {arn}" for arn in ours)
    left = {s["ARN"] for s in sm.list_secrets()["SecretList"]}
    assert left == {other, untagged, user}


def test_runtime_sets_only_the_named_variables(clients):
    arn = store_envvars(clients.secretsmanager, "knot", "run-1", VALUES)
    spec = {"envvars": envvar_reference(arn, ["KNOT_TEST_TOKEN"])}
    environ: dict[str, str] = {}
    names = runtime_envvars.apply(spec, environ, client=clients.secretsmanager)
    assert names == ["KNOT_TEST_TOKEN"]
    assert environ == {"KNOT_TEST_TOKEN": "s3cr3t-value"}


def test_runtime_without_envvars_reads_nothing():
    assert runtime_envvars.apply({"rule": "r"}, {}, client=object()) == []


def test_runtime_errors_name_variables_never_values(clients):
    sm = clients.secretsmanager
    arn = store_envvars(sm, "knot", "run-1", VALUES)
    with pytest.raises(JobFailure) as caught:
        runtime_envvars.apply({"envvars": envvar_reference(arn, ["ABSENT"])}, {}, client=sm)
    assert "ABSENT" in str(caught.value)
    assert not any(v in str(caught.value) for v in VALUES.values())
    not_json = sm.create_secret(Name="knot/knot/bad", SecretString="s3cr3t-value")["ARN"]
    with pytest.raises(JobFailure) as caught:
        runtime_envvars.apply({"envvars": envvar_reference(not_json, ["A"])}, {}, client=sm)
    assert "s3cr3t" not in str(caught.value) and caught.value.__cause__ is None
    with pytest.raises(JobFailure, match="invalid environment variables"):
        runtime_envvars.apply({"envvars": {"secret": arn, "names": ["A;rm"]}}, {}, client=sm)


def test_reference_holds_the_arn_and_sorted_names_only(clients):
    arn = store_envvars(clients.secretsmanager, "knot", "run-1", VALUES)
    reference = envvar_reference(arn, {"OTHER", "KNOT_TEST_TOKEN"})
    assert reference == {"secret": arn, "names": ["KNOT_TEST_TOKEN", "OTHER"]}
    assert not any(value in json.dumps(reference) for value in VALUES.values())
