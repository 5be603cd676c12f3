"""The envvars secret store (moto in-process): one secret per run, named and tagged under
the stack, read back by the runtime, and deleted per run or per stack."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from snakemake_executor_knot.aws.secrets import (
    HOST_TAG,
    MAX_RUN_AGE,
    PID_TAG,
    delete_dead_run_secrets,
    delete_secret,
    delete_stack_secrets,
    envvar_reference,
    read_envvars,
    run_is_over,
    secret_name,
    stack_secrets,
    store_envvars,
    this_host,
)
from snakemake_executor_knot.errors import AwsError
from snakemake_executor_knot.run.prepare import Preparation
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


# --- secrets of runs that died --------------------------------------------------------


def _secret_of(sm, run: str, host: str, pid: str, stack: str = "knot") -> str:
    """A secret as another run made it (its own host and pid tags)."""
    tags = [{"Key": "knot:stack", "Value": stack}, {"Key": HOST_TAG, "Value": host}]
    tags.append({"Key": PID_TAG, "Value": pid})
    return sm.create_secret(Name=secret_name(stack, run), SecretString="{}", Tags=tags)["ARN"]


def _names(sm) -> list[str]:
    return sorted(s["Name"] for s in sm.list_secrets()["SecretList"])


def _dead_process() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_secrets_of_dead_runs_go_and_live_runs_keep_theirs(clients):
    sm = clients.secretsmanager
    here = this_host()
    assert here != "unknown"  # Linux: the boot id and the PID namespace are readable
    mine = store_envvars(sm, "knot", "run-live", VALUES)  # this very process: alive
    assert {"Key": PID_TAG, "Value": str(os.getpid())} in sm.describe_secret(SecretId=mine)["Tags"]
    _secret_of(sm, "run-killed", here, str(_dead_process()))
    _secret_of(sm, "run-parent", here, str(os.getppid()))  # alive
    _secret_of(sm, "run-elsewhere", "other-host/boot/1", "12")  # young: may be running
    _secret_of(sm, "run-garbled", here, "12; rm -rf /")  # unreadable: kept
    _secret_of(sm, "run-superscript", here, "\u00b2")  # a digit to str.isdigit, not to int
    _secret_of(sm, "run-other-stack", here, str(_dead_process()), stack="knot-dev")
    gone = delete_dead_run_secrets(sm, "knot")
    assert gone == ["knot/knot/run-killed"]
    assert _names(sm) == [
        "knot/knot-dev/run-other-stack",
        "knot/knot/run-elsewhere",
        "knot/knot/run-garbled",
        "knot/knot/run-live",
        "knot/knot/run-parent",
        "knot/knot/run-superscript",
    ]


def test_a_run_elsewhere_is_over_only_after_the_age_limit():
    young = datetime.now(UTC) - timedelta(days=2)
    old = datetime.now(UTC) - MAX_RUN_AGE - timedelta(hours=1)
    elsewhere = [{"Key": HOST_TAG, "Value": "other/boot/1"}, {"Key": PID_TAG, "Value": "7"}]
    assert not run_is_over({"Tags": elsewhere, "CreatedDate": young}, "me/boot/2", young)
    assert run_is_over({"Tags": elsewhere, "CreatedDate": old}, "me/boot/2", datetime.now(UTC))
    # On this host the process decides, whatever the age.
    here = [{"Key": HOST_TAG, "Value": "me/boot/2"}, {"Key": PID_TAG, "Value": "7"}]
    old_here = {"Tags": here, "CreatedDate": old}
    assert not run_is_over(old_here, "me/boot/2", datetime.now(UTC), alive=lambda pid: True)
    assert run_is_over(old_here, "me/boot/2", datetime.now(UTC), alive=lambda pid: False)
    # Without a readable host (not Linux) nothing is judged by its pid.
    unknown = [{"Key": HOST_TAG, "Value": "unknown"}, {"Key": PID_TAG, "Value": "7"}]
    record = {"Tags": unknown, "CreatedDate": young}
    assert not run_is_over(record, "unknown", datetime.now(UTC), alive=lambda pid: False)


def test_a_start_deletes_them_in_one_line(clients):
    said: list[str] = []
    preparation = Preparation.__new__(Preparation)  # only what the cleanup uses
    preparation.clients, preparation.say = clients, said.append
    _secret_of(clients.secretsmanager, "run-killed", this_host(), str(_dead_process()))
    preparation._delete_dead_run_secrets("knot")
    assert said == [
        "knot: deleted 1 envvars secret(s) of runs that ended without deleting them: "
        "knot/knot/run-killed"
    ]
    preparation._delete_dead_run_secrets("knot")  # nothing left: nothing said
    assert len(said) == 1
