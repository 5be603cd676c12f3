"""The ``knot`` command: infra, jobs and logs against in-process moto, and the emulator's
commands where they need no emulator."""

from __future__ import annotations

import io
import json
import time

import boto3
import pytest

from snakemake_executor_knot import cli
from snakemake_executor_knot.aws import teardown
from snakemake_executor_knot.aws.clients import Clients
from snakemake_executor_knot.aws.policy import runner_policy
from snakemake_executor_knot.aws.stack import ensure_infra
from snakemake_executor_knot.cli import build_parser, jobs, main
from snakemake_executor_knot.cli.infra import status_report
from snakemake_executor_knot.cli.jobs import format_duration, format_table, job_row
from snakemake_executor_knot.config.settings import KnotConfig

from ..conftest import REGION, put_log

CONFIG = KnotConfig(stack_name="knot", max_vcpus=16, buckets=("user-data",))


def test_status_report_says_whether_the_stack_matches(clients):
    assert "does not exist" in status_report(clients, CONFIG)
    infra = ensure_infra(clients, CONFIG)
    report = status_report(clients, CONFIG)
    assert "CREATE_COMPLETE" in report and "up to date" in report
    for value in (infra.bucket, infra.repository_uri, infra.job_queue_arn, infra.log_group):
        assert value in report
    assert "differs" in status_report(clients, KnotConfig(max_vcpus=1))


def _knot(*argv: str) -> int:
    return main(["--region", REGION, "--stack-name", "cli-test", *argv])


def test_cli_up_status_down(moto, deletable_stack_resources, capsys, monkeypatch):
    assert _knot("infra", "up", "--max-vcpus", "16") == 0
    assert "Stack 'cli-test' is ready" in capsys.readouterr().out
    assert _knot("infra", "status", "--max-vcpus", "16") == 0
    assert "up to date" in capsys.readouterr().out
    assert _knot("infra", "status") == 0  # the defaults: a run with them would update it
    assert "Differs:     --max-vcpus" in capsys.readouterr().out
    # down shows what the stack holds; with no terminal to ask on it deletes nothing
    bucket = infra_of(cli_test_config()).bucket
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key="knot/files/0123abcd/data/raw.csv", Body=b"x" * 2048)
    s3.put_object(Bucket=bucket, Key="knot/specs/fit/1.jsonl", Body=b"{}")
    monkeypatch.setattr("sys.stdin", io.StringIO("cli-test\n"))
    assert _knot("infra", "down") == 1
    out = capsys.readouterr().out
    assert "Active jobs: 0" in out and "Workflow files: 0123abcd: 1 objects, 2.0 KiB" in out
    assert "Other objects: 1 (job specs" in out and "Nothing deleted" in out
    assert s3.head_object(Bucket=bucket, Key="knot/specs/fit/1.jsonl")
    monkeypatch.setattr("sys.stdin", _Terminal("cli-test\n"))  # answered on a terminal
    assert _knot("infra", "down") == 0
    assert "deleted stack cli-test" in capsys.readouterr().out
    assert _knot("infra", "down", "--yes") == 0
    assert "nothing to delete" in capsys.readouterr().out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def cli_test_config() -> KnotConfig:
    return KnotConfig(stack_name="cli-test", max_vcpus=16)


def infra_of(config: KnotConfig):
    from snakemake_executor_knot.aws.stack import describe_infra

    found = describe_infra(Clients(session=boto3.Session(region_name=REGION)), config)
    assert found is not None
    return found


def test_down_with_active_jobs_is_refused_without_yes(
    moto, deletable_stack_resources, capsys, monkeypatch
):
    clients = Clients(session=boto3.Session(region_name=REGION))
    ensure_infra(clients, cli_test_config())
    monkeypatch.setattr(teardown, "active_jobs", lambda made, queue: ["job-1", "job-2"])
    monkeypatch.setattr(teardown, "terminate_jobs", lambda *a: None)
    monkeypatch.setattr("sys.stdin", _Terminal("cli-test\n"))  # even a yes on a terminal
    assert _knot("infra", "down") == 1
    captured = capsys.readouterr()
    assert "Active jobs: 2 (job-1, job-2)" in captured.out
    assert "jobs are still active in stack 'cli-test'; nothing was deleted" in captured.err
    assert "infra down --yes" in captured.err
    assert infra_of(cli_test_config())
    assert _knot("infra", "down", "--yes") == 0
    assert "job job-1 (terminated)" in capsys.readouterr().out


def test_knot_runs_with_only_the_stack_variable_and_aws_region(
    moto, deletable_stack_resources, capsys, monkeypatch
):
    """The plugin's variable names the stack, AWS_REGION the region: no flag at all."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("SNAKEMAKE_KNOT_STACK_NAME", "lab-env")
    clients = Clients(session=boto3.Session(region_name="eu-west-1"))
    infra = ensure_infra(clients, KnotConfig(stack_name="lab-env"))
    assert main(["infra", "status"]) == 0
    out = capsys.readouterr().out
    assert "Stack:       'lab-env' in eu-west-1" in out and "up to date" in out
    assert main(["jobs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["infra", "policy"]) == 0
    assert "lab-env" in capsys.readouterr().out
    assert infra.region == "eu-west-1"
    # Another stack name: one line naming the flag, the variable and the profile key.
    monkeypatch.setenv("SNAKEMAKE_KNOT_STACK_NAME", "lab-gone")
    assert main(["jobs"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "(stack 'lab-gone') does not exist in region eu-west-1" in err
    assert (
        "stack name 'lab-gone' (from SNAKEMAKE_KNOT_STACK_NAME); set it with --stack-name, "
        "SNAKEMAKE_KNOT_STACK_NAME or the profile key knot-stack-name" in err
    )
    assert "region 'eu-west-1' (from AWS_REGION); set it with --region" in err
    assert main(["infra", "status"]) == 0
    assert "(from SNAKEMAKE_KNOT_STACK_NAME)" in capsys.readouterr().out


def test_a_region_or_aws_profile_not_found_names_where_it_was_set(aws_env, capsys, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert main(["infra", "policy"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("knot: No AWS region is set. Pass --region, set AWS_REGION")
    assert (
        "no region (the default); set it with --region, SNAKEMAKE_KNOT_REGION or the "
        "profile key knot-region." in err
    )
    monkeypatch.setenv("SNAKEMAKE_KNOT_REGION", "mars-north-1")
    assert main(["infra", "policy"]) == 1
    err = capsys.readouterr().err
    assert "AWS region 'mars-north-1' does not exist" in err
    assert "region 'mars-north-1' (from SNAKEMAKE_KNOT_REGION)" in err
    assert main(["infra", "policy", "--region", "us-east-1", "--profile", "nope"]) == 1
    err = capsys.readouterr().err
    assert "Could not load AWS profile 'nope'" in err and "profile 'nope' (from --profile)" in err
    assert len(err.strip().splitlines()) == 1


def test_an_upper_case_stack_name_is_refused_except_to_see_or_remove_an_old_stack(moto, capsys):
    argv = ["--region", REGION, "--stack-name", "Old-Stack"]
    assert main([*argv, "infra", "up"]) == 1
    err = capsys.readouterr().err
    assert "--stack-name 'Old-Stack' has upper-case letters" in err
    assert "Use --stack-name 'old-stack'" in err and "SNAKEMAKE_KNOT" not in err
    assert main([*argv, "infra", "status"]) == 0  # an older knot's stack stays visible
    assert "does not exist" in capsys.readouterr().out


def test_cli_down_requires_a_subcommand():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["infra"])
    assert build_parser().parse_args(["infra", "down", "--force"]).yes is True  # older name
    assert build_parser().parse_args(["infra", "down", "-y"]).yes is True


def test_job_row_falls_back_to_the_name_and_formats_durations():
    job = {"jobId": "j", "jobName": "fit-01-j1-abc", "status": "RUNNING", "startedAt": 1_000}
    assert job_row(job, now_ms=3_726_000) == ["j", "fit-01-j1-abc", "fit", "RUNNING", "1h02m05s"]
    assert job_row({**job, "startedAt": None}, 0)[4] == "-"
    assert format_duration(59.9) == "0m59s"
    assert format_table(["A", "BB"], [["xyz", "1"]]) == "A    BB\nxyz  1"


def test_cli_commands(clients, batch, monkeypatch, capsys):
    # The stack is aws.stack's business; here the queue made above stands in for it.
    monkeypatch.setattr(jobs, "make_clients", lambda config: clients)
    monkeypatch.setattr(jobs, "describe_infra", lambda made, config: batch.infra)
    job = batch.submit("fit-01-j1-0badc0de")
    assert cli.main(["jobs", "--limit", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["JOB", "ID", "NAME", "RULE", "STATUS", "DURATION"]
    assert out[1].split()[:4] == [job, "fit-01-j1-0badc0de", "fit", "SUCCEEDED"]

    stream = clients.batch.describe_jobs(jobs=[job])["jobs"][0]["container"]["logStreamName"]
    put_log(clients, batch.infra.log_group, stream, ["done"])
    assert cli.main(["logs", job]) == 0
    assert capsys.readouterr().out == "done\n"
    # A job's log may hold terminal escape sequences: printed as text, they act on nothing.
    hostile = {"timestamp": int(time.time() * 1000) + 5, "message": "\x1b]0;t\x07\x1b[2Ja\tb"}
    group = batch.infra.log_group
    clients.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[hostile])
    assert cli.main(["logs", job]) == 0
    assert capsys.readouterr().out == "done\n\\x1b]0;t\\x07\\x1b[2Ja\tb\n"

    # filters and JSON: by rule tag and by status, before the limit
    other = batch.submit("plot-j2-0badc0de", rule="plot")
    assert cli.main(["jobs", "--json", "--rule", "plot"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["job_id"], r["rule"]) for r in rows] == [(other, "plot")]
    assert set(rows[0]) >= {"name", "status", "created_at", "seconds", "status_reason"}
    assert cli.main(["jobs", "--json", "--status", "failed,runnable", "--limit", "1"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    status = json.loads(_output(capsys, "jobs", "--json"))[0]["status"]
    assert cli.main(["jobs", "--json", "--status", status.lower(), "--limit", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["jobs", "--status", "DONE"])

    monkeypatch.setattr(jobs, "describe_infra", lambda made, config: None)
    assert cli.main(["logs", job]) == 1
    assert "Create it with 'knot infra up'" in capsys.readouterr().err


def _output(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out


def test_cli_policy_is_rendered_for_the_sessions_partition(aws_env, capsys):
    assert main(["--region", "cn-north-1", "--stack-name", "lab", "infra", "policy",
                 "--bucket", "s3://lab-results", "--bucket", "lab-raw"]) == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert printed == runner_policy("aws-cn", "lab", ["lab-raw", "lab-results"])


def test_cli_service_role_prints_then_creates(moto, capsys):
    assert _knot("infra", "service-role") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["RoleName"] == "knot-cfn-cli-test"
    assert printed["Boundary"]["Path"] == "/knot/cli-test/"
    assert _knot("infra", "service-role", "--create") == 0
    assert "created role knot-cfn-cli-test" in capsys.readouterr().out
    assert _knot("infra", "status") == 0
    assert "does not exist" in capsys.readouterr().out
    assert _knot("infra", "up") == 0
    assert (
        "Made by:     arn:aws:iam::123456789012:role/knot-cfn-cli-test" in capsys.readouterr().out
    )


def test_only_plan_takes_snakemake_arguments(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        main(["jobs", "--knot-emulator"])
    assert "unrecognized arguments: --knot-emulator" in capsys.readouterr().err
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'
    )
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--json", "--knot-on-demand", "a.txt"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["market"] == {"default": "on-demand"}
    assert [(r["rule"], r["jobs"], r["forecast"]) for r in plan["rules"]] == [("a", 1, "unknown")]


def test_plan_hands_the_profiles_knot_took_on_to_snakemake(tmp_path, monkeypatch, capsys):
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'
    )
    profile = tmp_path / "lab"
    profile.mkdir()
    (profile / "config.yaml").write_text("knot-on-demand: true\n")
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--json", "--workflow-profile", str(profile), "a.txt"]) == 0
    assert json.loads(capsys.readouterr().out)["market"] == {"default": "on-demand"}
