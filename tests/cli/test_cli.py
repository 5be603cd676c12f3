"""The ``knot`` command: infra, jobs and logs against in-process moto, and the emulator's
commands where they need no emulator."""

from __future__ import annotations

import json
import time

import pytest

from snakemake_executor_knot import cli
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


def test_cli_up_status_down(moto, deletable_stack_resources, capsys):
    assert _knot("infra", "up") == 0
    assert "Stack 'cli-test' is ready" in capsys.readouterr().out
    assert _knot("infra", "status") == 0
    assert "up to date" in capsys.readouterr().out
    assert _knot("infra", "down") == 0
    out = capsys.readouterr().out
    assert "deleted stack cli-test" in out
    assert _knot("infra", "down", "--force") == 0
    assert "nothing to delete" in capsys.readouterr().out


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
    assert build_parser().parse_args(["infra", "down", "--force"]).force is True


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

    monkeypatch.setattr(jobs, "describe_infra", lambda made, config: None)
    assert cli.main(["logs", job]) == 1
    assert "Create it with 'knot infra up'" in capsys.readouterr().err


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
