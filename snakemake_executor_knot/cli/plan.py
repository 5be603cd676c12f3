"""``knot plan [--json] <snakemake arguments>``: what a run would cost and how long it would
take, before it runs, from the earlier runs' records. The arguments are those of the run
(Snakefile, targets, ``--config``, profiles, ``--knot-*``); nothing is created and no AWS
service is asked (prices come from knot's table). The work is in ``forecast``."""

from __future__ import annotations

import argparse
import json

from ..config.settings import KnotConfig
from ..forecast.dag import plan_jobs
from ..forecast.history import load_history
from ..forecast.plan import make_plan
from ..forecast.render import plan_json, plan_text
from ..report.pricing import load_prices
from ..report.records import RUN_DIR


def register(commands) -> None:
    """Add the ``plan`` subcommand to an argparse subparsers object."""
    parser = commands.add_parser(
        "plan",
        help="forecast a run's time and cost from earlier runs",
        description="Forecast the jobs, wall time, vCPU-hours, memory and cost of "
        "'snakemake --executor knot ARGS' from the usage earlier runs recorded in "
        ".snakemake/knot/. Give the run's own arguments after the plan's.",
        usage="knot plan [--json] [SNAKEMAKE ARGS ...]",
    )
    parser.add_argument("--json", dest="plan_json", action="store_true", help="print JSON")
    parser.set_defaults(handler=handle, takes_extra=True)


def handle(args: argparse.Namespace, config: KnotConfig) -> int:
    planned = plan_jobs(snakemake_arguments(args))
    history = load_history(planned.workdir / RUN_DIR)
    plan = make_plan(planned.jobs, history, planned.config, load_prices(), planned.max_jobs)
    if args.plan_json:
        print(json.dumps(plan_json(plan), indent=2))
    else:
        print(plan_text(plan))
    return 0


def snakemake_arguments(args: argparse.Namespace) -> list[str]:
    """The run's arguments for Snakemake's parser: those knot does not know, and the
    profiles and region that knot's own parser took first (every ``knot`` command reads
    them), handed on so that the plan sees the run's settings."""
    taken: list[str] = []
    for profile in getattr(args, "snakemake_profile", None) or ():
        taken += ["--profile", profile]
    if getattr(args, "workflow_profile", None):
        taken += ["--workflow-profile", args.workflow_profile]
    if getattr(args, "region", None):
        taken += ["--knot-region", args.region]
    return [*taken, *args.extra]
