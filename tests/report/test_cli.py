"""``knot report`` through argparse: JSON, profile block, files, price refresh."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

from snakemake_executor_knot.cli.report import register, run_report
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.report.pricing import load_prices
from snakemake_executor_knot.report.table import JOB_KEYS

from . import samples


def parse(*argv: str) -> argparse.Namespace:
    # The top-level --profile (AWS profile) must survive the subcommand's --profile flag.
    parser = argparse.ArgumentParser(prog="knot")
    parser.add_argument("--profile")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder whose latest run is the three-rule sample."""
    monkeypatch.chdir(tmp_path)
    samples.write(tmp_path / ".snakemake" / "knot", samples.three_rules())
    return tmp_path


def test_json_prints_one_object_with_totals_rules_and_jobs(project, capsys):
    args = parse("--profile", "dev", "report", "--json")
    assert args.profile == "dev"
    assert args.handler(args, KnotConfig()) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    assert list(document) == [
        "schema_version", "run_id", "started", "ended", "wall_time_s", "totals", "costs",
        "where_time_went", "images", "api_calls", "versions", "command", "rules", "jobs",
    ]  # fmt: skip
    assert document["schema_version"] == 1 and document["run_id"] == samples.RUN_ID
    assert document["totals"]["currency"] == "USD" and document["totals"]["jobs"] == 4
    assert document["totals"]["cost"] == pytest.approx(
        sum(r["cost_usd"] or 0 for r in document["rules"])
    )
    rows = document["rules"]
    assert [row["rule"] for row in rows] == ["prep", "fit", "plot"]
    assert all(set(row) >= samples.REQUIRED for row in rows)
    assert [(j["rule"], j["jobid"]) for j in document["jobs"]] == [
        ("prep", 1), ("prep", 2), ("fit", 3), ("plot", 4),
    ]  # fmt: skip
    assert set(document["jobs"][0]) == set(JOB_KEYS)
    assert document["costs"]["excludes"].startswith("instance time no job used")
    assert not list(project.glob(".snakemake/knot/knot-report-*"))


def test_json_into_a_closed_pipe_ends_quietly(tmp_path):
    """``knot report --json | head -3``: the reader goes after three lines, long before the
    document (far more than a pipe's buffer) is written."""
    samples.write(
        tmp_path / ".snakemake" / "knot", samples.run([samples.job(i) for i in range(600)])
    )
    script = "from snakemake_executor_knot.cli import main; raise SystemExit(main())"
    shell = f"{sys.executable} -c '{script}' report --json | head -3"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        ["sh", "-c", shell], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert done.stdout.splitlines() == [
        "{",
        '  "schema_version": 1,',
        f'  "run_id": "{samples.RUN_ID}",',
    ]
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_an_old_price_table_is_warned_about(project, capsys):
    args = parse("report")
    assert args.handler(args, KnotConfig()) == 0
    err = capsys.readouterr().err
    table = load_prices()
    if (date.today() - date.fromisoformat(table.as_of)).days > 90:
        assert f"knot: knot's price table is from {table.as_of}" in err
        assert "--refresh-prices" in err
    else:
        assert "price table is from" not in err


def test_profile_prints_a_profile_block(project, capsys):
    args = parse("report", samples.RUN_ID, "--profile-block")
    assert args.handler(args, KnotConfig()) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {
        "set-resources": {"prep": {"mem_mb": 2048}, "fit": {"mem_mb": 4096}},
        "set-threads": {"prep": 1, "fit": 2},
    }


def test_default_writes_html_and_png(project, capsys):
    args = parse("report", str(project / ".snakemake/knot" / f"run-{samples.RUN_ID}.json"))
    assert args.handler(args, KnotConfig()) == 0
    out = capsys.readouterr().out.splitlines()
    html = project / ".snakemake/knot" / f"knot-report-{samples.RUN_ID}.html"
    png = html.with_suffix(".png")
    assert out[:2] == [
        f"knot report: wrote {html.relative_to(project)}",
        f"knot report: wrote {png.relative_to(project)}",
    ]
    assert out[2].startswith("total cost: $")
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_out_puts_the_files_elsewhere(project, capsys):
    args = parse("report", "--out", str(project / "reports"))
    assert args.handler(args, KnotConfig()) == 0
    assert sorted(p.name for p in (project / "reports").iterdir()) == [
        f"knot-report-{samples.RUN_ID}.html",
        f"knot-report-{samples.RUN_ID}.png",
    ]


class FlatPrices:
    """A Price List client that prices every type at 1 USD an hour."""

    def __init__(self):
        self.types = []

    def get_products(self, **kwargs):
        instance_type = kwargs["Filters"][0]["Value"]
        self.types.append(instance_type)
        dimension = {"unit": "Hrs", "pricePerUnit": {"USD": "1.0000000000"}}
        item = {"terms": {"OnDemand": {"T": {"priceDimensions": {"D": dimension}}}}}
        return {"FormatVersion": "aws_v1", "PriceList": [json.dumps(item)]}


def test_refresh_prices_uses_the_price_list_client(project, capsys):
    client = FlatPrices()
    args = parse("report", "--json", "--refresh-prices")
    assert run_report(args, make_pricing_client=lambda: client) == 0
    rows = json.loads(capsys.readouterr().out)["rules"]
    # prep: two half-instance hours at 1 USD/h.
    assert rows[0]["cost_usd"] == pytest.approx(1.0)
    assert "m5.large" in client.types and "g4dn.xlarge" not in client.types


def test_refresh_prices_falls_back_to_the_table(project, capsys):
    class Refusing:
        def get_products(self, **kwargs):
            raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "GetProducts")

    args = parse("report", "--refresh-prices")
    assert run_report(args, make_pricing_client=Refusing) == 0
    captured = capsys.readouterr()
    assert "using knot's price table of" in captured.err
    page = next(project.glob(".snakemake/knot/*.html")).read_text()
    assert "from knot&#x27;s price table of" in page and "refreshed" not in page


def test_no_runs_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse("report", "--json")
    with pytest.raises(ConfigError, match="no knot runs recorded"):
        args.handler(args, KnotConfig())
