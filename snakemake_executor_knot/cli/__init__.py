"""The ``knot`` command: the top floor. It parses the flags, builds the config once and calls
into the packages below; nothing in knot imports it. Each subcommand lives in its own module
and registers itself here. The settings are the plugin's own, read as a run reads them
(``cli.settings``), and every flag is accepted before or after the subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError

from .. import __version__
from ..config.settings import KnotConfig
from ..config.sources import (
    GLOBAL,
    Origins,
    add_profile_flags,
    add_setting_flags,
    config_from,
    explain_error,
    in_cli_terms,
    resolve,
)
from ..errors import SettingError
from . import debug, emulator, iam, infra, jobs, lock, plan, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="knot",
        description="Inspect and manage knot's AWS Batch infrastructure. Settings come from "
        "a flag, SNAKEMAKE_KNOT_<NAME>, or the key knot-<name> of a Snakemake profile, as "
        "for 'snakemake --executor knot'.",
    )
    parser.add_argument("--version", action="version", version=f"knot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    iam.register(infra.register(commands))
    for module in (jobs, debug, emulator, report, lock, plan):
        module.register(commands)
    for each in _all_parsers(parser):
        add_setting_flags(each, GLOBAL)
        add_profile_flags(each)
    return parser


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and every subcommand's parser below it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _all_parsers(sub)
    return found


def _looks_only(args: argparse.Namespace) -> bool:
    """Whether the command only shows or removes a stack: those take a stack name an older
    knot allowed (upper case), so that such a stack can still be seen and removed."""
    return args.command == "infra" and getattr(args, "infra_command", None) in {"status", "down"}


def dispatch(args: argparse.Namespace, environ=None, cwd: Path | None = None) -> int:
    """Read the settings, run the chosen subcommand's handler with the config; knot's
    errors become one message, in this command's terms, and exit 1."""
    environ = os.environ if environ is None else environ
    origins = Origins({}, environ)
    config: KnotConfig | None = None
    try:
        settings, origins = resolve(args, environ, cwd or Path.cwd())
        config = config_from(settings, origins, legacy=_looks_only(args))
        args.origins = origins
        return int(args.handler(args, config) or 0)
    except SettingError as exc:
        print(f"knot: {explain_error(exc, origins, config)}", file=sys.stderr)
    except WorkflowError as exc:
        print(f"knot: {in_cli_terms(str(exc), origins)}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # 'knot plan' passes the arguments it does not know on to Snakemake's own parser.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    return dispatch(args)
