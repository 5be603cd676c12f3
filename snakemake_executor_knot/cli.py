"""The ``knot`` command. Each module registers its own subcommands, so this file only
wires them together."""

from __future__ import annotations

import argparse
import sys

from snakemake_interface_common.exceptions import WorkflowError


def build_parser() -> argparse.ArgumentParser:
    from . import emulator, infra, status

    parser = argparse.ArgumentParser(
        prog="knot", description="Inspect and manage knot's AWS Batch infrastructure."
    )
    parser.add_argument("--region", help="AWS region (default: as boto3 finds it)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    parser.add_argument("--endpoint-url", help="AWS endpoint URL (default: AWS_ENDPOINT_URL)")
    parser.add_argument("--stack-name", default="knot", help="stack name (default: knot)")
    parser.add_argument("--emulator", action="store_true", help="talk to the local emulator")
    commands = parser.add_subparsers(dest="command", required=True)
    infra.register_cli(commands)
    status.register_cli(commands)
    emulator.register_cli(commands)
    return parser


def config_from_args(args: argparse.Namespace):
    """A KnotConfig from the common flags, for subcommands that talk to AWS."""
    from .settings import KnotConfig, _stack_name

    return KnotConfig(
        region=args.region,
        profile=args.profile,
        endpoint_url=args.endpoint_url,
        emulator=args.emulator,
        stack_name=_stack_name(args.stack_name),
    )


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen subcommand's handler; knot's errors become a message and exit 1."""
    try:
        return int(args.handler(args) or 0)
    except WorkflowError as exc:
        print(f"knot: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
