"""The ``knot`` command's settings: flag, SNAKEMAKE_KNOT_*, workflow profile, Snakemake
profiles, default, in Snakemake's order; flags before or after the subcommand; errors in
the command's terms."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from snakemake_executor_knot.cli import build_parser, dispatch
from snakemake_executor_knot.config.settings import ExecutorSettings
from snakemake_executor_knot.config.sources import (
    FIELDS,
    Origins,
    config_from,
    find_profile,
    in_cli_terms,
    resolve,
)
from snakemake_executor_knot.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def write_profile(folder: Path, text: str, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_global_flags_are_taken_before_or_after_the_subcommand():
    for argv in (
        ["--region", "eu-west-1", "infra", "policy"],
        ["infra", "--region", "eu-west-1", "policy"],
        ["infra", "policy", "--region", "eu-west-1"],
    ):
        assert parse(*argv).region == "eu-west-1"
    # one given before and none after: the subcommand's parser leaves it alone
    args = parse("--stack-name", "lab", "jobs", "--json")
    assert args.stack_name == "lab" and args.json
    assert not hasattr(parse("jobs"), "stack_name")  # absent: the default comes later


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse("--version")
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("knot 0.")


def test_flag_beats_variable_beats_workflow_profile_beats_snakemake_profile(tmp_path):
    general = write_profile(tmp_path / "general", "knot-max-vcpus: 8\nknot-min-vcpus: 2\n"
                            "knot-region: us-west-2\nknot_tags: team=neuro\n")  # fmt: skip
    write_profile(tmp_path / "profiles" / "default", "knot-max-vcpus: 16\nknot-min-vcpus: 3\n")
    environ = {"SNAKEMAKE_PROFILE": str(general), "SNAKEMAKE_KNOT_MIN_VCPUS": "4"}
    settings, origins = resolve(parse("infra", "status", "--max-vcpus", "32"), environ, tmp_path)
    assert settings.max_vcpus == 32 and origins.of("max_vcpus") == "--max-vcpus"
    assert settings.min_vcpus == 4 and origins.of("min_vcpus") == "SNAKEMAKE_KNOT_MIN_VCPUS"
    assert settings.region == "us-west-2"
    assert origins.of("region") == f"knot-region in {general / 'config.yaml'}"
    assert settings.tags == "team=neuro"  # Snakemake's underscore spelling is read too
    settings, _ = resolve(parse("infra", "status"), environ, tmp_path)
    assert settings.max_vcpus == 16  # the workflow profile over the general one
    settings, origins = resolve(parse("infra", "status"), {}, tmp_path / "general")
    assert settings.max_vcpus == ExecutorSettings.max_vcpus and origins.of("max_vcpus") is None


def test_variables_and_profiles_take_the_settings_types(tmp_path):
    environ = {"SNAKEMAKE_KNOT_ON_DEMAND": "true", "SNAKEMAKE_KNOT_SUBMIT_RATE": "2.5"}
    settings, _ = resolve(parse("jobs"), environ, tmp_path)
    assert settings.on_demand is True and settings.submit_rate == 2.5
    with pytest.raises(ConfigError, match="SNAKEMAKE_KNOT_MAX_VCPUS: 'many' is not a number"):
        resolve(parse("jobs"), {"SNAKEMAKE_KNOT_MAX_VCPUS": "many"}, tmp_path)
    with pytest.raises(ConfigError, match="SNAKEMAKE_KNOT_EMULATOR: 'maybe' is not true or"):
        resolve(parse("jobs"), {"SNAKEMAKE_KNOT_EMULATOR": "maybe"}, tmp_path)


def test_a_profile_is_found_by_name_in_snakemakes_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    folder = write_profile(tmp_path / "xdg" / "snakemake" / "aws", "knot-stack-name: lab\n")
    # Snakemake's versioned file names: the highest version this Snakemake reads wins.
    write_profile(folder, "knot-stack-name: lab-9\n", "config.v9+.yaml")
    write_profile(folder, "knot-stack-name: lab-99\n", "config.v99+.yaml")
    assert find_profile("aws", tmp_path, "x") == folder / "config.v9+.yaml"
    settings, _ = resolve(parse("jobs", "--snakemake-profile", "aws"), {}, tmp_path)
    assert settings.stack_name == "lab-9"
    with pytest.raises(ConfigError, match=r"profile 'nowhere' \(SNAKEMAKE_PROFILE\) not found"):
        resolve(parse("jobs"), {"SNAKEMAKE_PROFILE": "nowhere"}, tmp_path)


def test_errors_name_the_commands_flag_and_where_a_value_came_from(tmp_path, capsys):
    environ = {"SNAKEMAKE_KNOT_MAX_VCPUS": "0"}
    assert dispatch(parse("infra", "status"), environ, tmp_path) == 1
    err = capsys.readouterr().err
    assert "--min-vcpus/--max-vcpus need" in err and "--knot-" not in err
    assert "--max-vcpus came from SNAKEMAKE_KNOT_MAX_VCPUS" in err
    assert len(err.strip().splitlines()) == 1
    origins = Origins({"stack_name": "flag"}, {})
    assert in_cli_terms("use --knot-stack-name or --knot-nonsense", origins) == (
        "use --stack-name or --knot-nonsense"
    )


def test_an_upper_case_stack_name_from_a_variable_is_named_so(tmp_path):
    environ = {"SNAKEMAKE_KNOT_STACK_NAME": "Lab"}
    settings, origins = resolve(parse("jobs"), environ, tmp_path)
    with pytest.raises(ConfigError, match=r"--stack-name 'Lab' \(SNAKEMAKE_KNOT_STACK_NAME\)"):
        config_from(settings, origins, legacy=False)
    assert config_from(settings, origins, legacy=True).stack_name == "Lab"


def test_every_setting_states_its_default_and_optimal_is_explained():
    for field in dataclasses.fields(ExecutorSettings):
        assert "Default" in field.metadata["help"], field.name
    assert "optimal, which lets Batch pick" in FIELDS["instance_types"].metadata["help"]


def test_status_and_up_take_the_sizing_flags_and_report_its_profile_block():
    args = parse("infra", "status", "--max-vcpus", "16", "--compute-classes", "gpu=g5")
    assert args.max_vcpus == 16 and args.compute_classes == "gpu=g5"
    assert parse("infra", "up", "--on-demand").on_demand is True
    args = parse("report", "--profile", "dev", "--profile-block")
    assert args.profile == "dev" and args.profile_block is True
    with pytest.raises(SystemExit):
        parse("jobs", "--max-vcpus", "16")  # sizing is not a 'knot jobs' flag


def test_help_shows_every_default(capsys):
    # 'knot report' is left out: its own flags are being reworked with the report
    commands = [["infra", c] for c in ("status", "up", "down", "policy", "service-role")]
    commands += [["jobs"], ["logs"], ["lock"], ["emulator", "start"], ["emulator", "faults"]]
    for argv in commands:
        with pytest.raises(SystemExit):
            parse(*argv, "--help")
        text = capsys.readouterr().out.split("options:", 1)[1]
        # one entry per option: its line starts with two spaces and a dash
        entries = re.split(r"\n(?=  -)", text.strip("\n"))
        assert len(entries) > 5
        for entry in entries:
            if not entry.lstrip().startswith(("-h", "--version")):
                assert "default" in entry.lower(), (argv, entry)
