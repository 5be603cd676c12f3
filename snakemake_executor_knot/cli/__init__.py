"""The ``knot`` command: the top floor. It parses the flags, builds the config once and calls
into the packages below; nothing in knot imports it. Each subcommand lives in its own module
and registers itself here."""

from __future__ import annotations

import argparse
import sys

from snakemake_interface_common.exceptions import WorkflowError

from ..config.settings import KnotConfig, check_stack_name
from . import emulator, iam, infra, jobs, lock, plan, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knot", description="Inspect and manage knot's AWS Batch infrastructure."
    )
    parser.add_argument("--region", help="AWS region (default: as boto3 finds it)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    parser.add_argument("--endpoint-url", help="AWS endpoint URL (default: AWS_ENDPOINT_URL)")
    parser.add_argument("--stack-name", default="knot", help="stack name (default: knot)")
    parser.add_argument("--emulator", action="store_true", help="talk to the local emulator")
    commands = parser.add_subparsers(dest="command", required=True)
    iam.register(infra.register(commands))
    for module in (jobs, emulator, report, lock, plan):
        module.register(commands)
    return parser


def config_from_args(args: argparse.Namespace) -> KnotConfig:
    """A KnotConfig from the common flags, for subcommands that talk to AWS."""
    return KnotConfig(
        region=args.region,
        profile=args.profile,
        endpoint_url=args.endpoint_url,
        emulator=args.emulator,
        stack_name=check_stack_name(
            args.stack_name, flag="--stack-name", variable=None, legacy=_looks_only(args)
        ),
    )


def _looks_only(args: argparse.Namespace) -> bool:
    """Whether the command only shows or removes a stack: those take a stack name an older
    knot allowed (upper case), so that such a stack can still be seen and removed."""
    return args.command == "infra" and getattr(args, "infra_command", None) in {"status", "down"}


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen subcommand's handler with the config; knot's errors become a message
    and exit 1."""
    try:
        return int(args.handler(args, config_from_args(args)) or 0)
    except WorkflowError as exc:
        print(f"knot: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # 'knot plan' passes the arguments it does not know on to Snakemake's own parser.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    return dispatch(args)
