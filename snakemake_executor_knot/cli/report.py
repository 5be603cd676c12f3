"""``knot report [RUN]``: the timeline, per-rule use and cost of a run, from its record in
``.snakemake/knot/``, as an HTML page and a PNG, as JSON (``--json``) or as a profile block
of right-sized requests (``--profile-block``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError

from ..config.settings import KnotConfig
from ..errors import ConfigError
from ..report.document import report_document
from ..report.pricing import (
    DEFAULT_REGION,
    PriceTable,
    allowed_type,
    load_prices,
    price_context,
    refresh_prices,
    with_refreshed,
)
from ..report.records import RUN_DIR, RunRecord, find_run, load_run
from ..report.render import png_bytes, write_html
from ..report.sizing import profile_block
from ..report.table import any_estimated, rule_rows, total_cost

PricingClientFactory = Callable[[], object | None]


def register(commands) -> None:
    """Add the ``report`` subcommand to an argparse subparsers object."""
    parser = commands.add_parser(
        "report",
        help="see, size and cost a run",
        description="Show where a run's time went, what each rule used against what it "
        "asked for, what it cost, and the sizes to ask for next time.",
    )
    parser.add_argument(
        "run", nargs="?", metavar="RUN", help="run id or run-*.json path (default: the latest)"
    )
    # --profile is the AWS profile here as everywhere in knot; the profile block is
    # --profile-block. dest names differ from the flags, as the namespace is shared.
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--json",
        dest="json_rows",
        action="store_true",
        help="print the report as one JSON object (schema_version, run_id, totals, costs, "
        "images, rules, jobs)",
    )
    mode.add_argument(
        "--profile-block",
        dest="profile_block",
        action="store_true",
        help="print a set-resources/set-threads block for a Snakemake profile",
    )
    parser.add_argument(
        "--out", metavar="DIR", type=Path, help=f"where to write the report (default: {RUN_DIR})"
    )
    parser.add_argument(
        "--refresh-prices",
        action="store_true",
        help="ask the AWS Price List API for current on-demand prices (needs AWS credentials)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, config: KnotConfig) -> int:
    """The ``report`` subcommand, with a Price List client from the command's AWS profile."""
    return run_report(args, make_pricing_client=pricing_client_factory(config))


def run_report(
    args: argparse.Namespace, make_pricing_client: PricingClientFactory | None = None
) -> int:
    """Load the run named by ``args.run``, cost it, and print or write the report."""
    run = load_run(find_run(args.run, RUN_DIR))
    table = load_prices()
    if args.refresh_prices:
        table = refreshed_table(table, run, make_pricing_client)
    context = price_context(run.pricing, table, run.spot_prices.get("prices"))
    rows = rule_rows(run, context)
    document = report_document(run, rows, context)
    if args.json_rows:
        return _print(json.dumps(document, indent=2) + "\n")
    if args.profile_block:
        return _print(profile_block(rows))
    if document["costs"]["warning"]:
        print(f"knot: {document['costs']['warning']}", file=sys.stderr)
    lines = [
        f"knot report: wrote {p}"
        for p in write_report(run, rows, document, Path(args.out or RUN_DIR))
    ]
    estimate = " (estimate)" if any_estimated(rows) else ""
    lines.append(
        f"total cost: ${total_cost(rows):.4f}{estimate}, {context.market} prices; see the report"
    )
    return _print("\n".join(lines) + "\n")


def _print(text: str) -> int:
    """Write ``text`` to stdout; a reader that closed the pipe early (``| head``) is not an
    error. stdout is then pointed at /dev/null, so Python's own flush at exit stays quiet."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def write_report(run: RunRecord, rows: list[dict], document: dict, out: Path) -> list[Path]:
    """Write ``knot-report-<run_id>.html`` and ``.png`` into ``out``; their paths."""
    html_path = out / f"knot-report-{run.run_id}.html"
    png_path = html_path.with_suffix(".png")
    try:
        out.mkdir(parents=True, exist_ok=True)
        png = png_bytes(run)
        png_path.write_bytes(png)
        write_html(run, rows, document, html_path, png=png)
    except OSError as exc:
        raise ConfigError(f"cannot write the report into {out}: {exc}. Pick --out DIR.") from exc
    return [html_path, png_path]


def refreshed_table(
    table: PriceTable, run: RunRecord, make_pricing_client: PricingClientFactory | None
) -> PriceTable:
    """``table`` with current on-demand prices for the run's region and instance types, or
    ``table`` itself (and a warning) when the Price List API cannot be reached."""
    client = make_pricing_client() if make_pricing_client else None
    region = run.pricing.region or DEFAULT_REGION
    prices = refresh_prices(client, region, _types_to_refresh(table, run)) if client else {}
    if not prices:
        print(
            "knot: could not refresh prices from the AWS Price List API; using knot's price "
            f"table of {table.as_of}.",
            file=sys.stderr,
        )
    return with_refreshed(table, region, prices, on=date.today().isoformat())


def pricing_client_factory(config: KnotConfig) -> PricingClientFactory:
    """A factory of Price List API clients with the command's AWS profile, built only when
    --refresh-prices asks for one; it answers None when boto3 cannot make a client."""

    def make() -> object | None:
        try:
            session = boto3.Session(profile_name=config.profile)
            # The Price List API has no endpoint in most regions; us-east-1 serves every
            # region's prices.
            return session.client("pricing", region_name="us-east-1")
        except BotoCoreError as exc:
            print(f"knot: no Price List API client: {exc}", file=sys.stderr)
            return None

    return make


def _types_to_refresh(table: PriceTable, run: RunRecord) -> list[str]:
    """The table's types the run's compute environment may use, plus those Batch reported."""
    recorded = {job.instance_type for job in run.jobs if job.instance_type}
    names = {name for prices in table.regions.values() for name in prices}
    allowed = {name for name in names if allowed_type(name, run.pricing.instance_types)}
    return sorted(allowed | recorded)
