"""``knot infra status|up|down``: show, create or delete the shared stack."""

from __future__ import annotations

import argparse
import sys

from ..aws.capacity import describe_queues
from ..aws.clients import Clients, make_clients
from ..aws.service_role import find_service_role
from ..aws.stack import (
    Infra,
    StackOps,
    conflicts,
    deployed_hash,
    deployed_settings,
    ensure_infra,
    infra_from_stack,
    wanted_template,
)
from ..aws.teardown import stack_holdings, teardown
from ..aws.template.storage import (
    FILES_PREFIX,
    MAX_IMAGES,
    SPEC_EXPIRY_DAYS,
    SPEC_PREFIX,
    UNTAGGED_IMAGE_DAYS,
)
from ..config.classes import DEFAULT_CLASS, class_from_record
from ..config.settings import KnotConfig
from ..config.sources import SIZING, Origins, add_setting_flags, in_cli_terms
from ..errors import ConfigError


def status_report(clients: Clients, config: KnotConfig, origin: str = "") -> str:
    """A human-readable summary of the stack and whether it matches these settings;
    ``origin`` says where the stack name and region came from, for a stack not found."""
    ops = StackOps(clients, config.stack_name)
    stack = ops.describe()
    where = f"'{config.stack_name}' in {clients.region}"
    if stack is None:
        return (
            f"Stack {where} does not exist. 'knot infra up' (or any knot run) creates it. {origin}"
        ).strip()
    settings = deployed_settings(stack)
    _, digest = wanted_template(config, settings)
    deployed = deployed_hash(stack)
    lines = [f"Stack:       {where}", f"Status:      {stack['StackStatus']}"]
    state = "up to date" if deployed == digest else "differs (the next knot run updates it)"
    lines.append(f"Template:    {deployed or '-'}, these settings {digest}: {state}")
    lines += [f"Differs:     {line}" for line in conflicts(settings, config)]
    lines.append(f"Made by:     {config.cfn_role or 'your own identity (no service role)'}")
    lines += retention_lines(settings)
    if stack["StackStatus"].endswith("FAILED") or "ROLLBACK" in stack["StackStatus"]:
        lines.append("Problems:    " + ("; ".join(ops.reasons()) or "-"))
    infra = infra_from_stack(stack, clients.region)
    if infra is not None:
        lines += [
            f"Bucket:      s3://{infra.bucket}",
            f"Repository:  {infra.repository_uri}",
            f"Job queue:   {infra.job_queue_arn}",
            f"Log group:   {infra.log_group}",
            f"Job role:    {infra.job_role_arn}",
        ]
        lines += class_lines(clients, infra, settings)
    return "\n".join(lines)


def class_lines(clients: Clients, infra: Infra, settings: dict | None) -> list[str]:
    """Each compute class as deployed, its job queue and the queue's state and status."""
    defined = class_definitions(settings)
    described = describe_queues(clients.batch, [*infra.queues.values()])
    queues = {queue["jobQueueArn"]: queue for queue in described}
    lines = []
    for name in sorted(infra.queues, key=lambda name: (name != DEFAULT_CLASS, name)):
        arn = infra.queues[name]
        queue = queues.get(arn, {})
        state = f"{queue.get('state', '?')}, {queue.get('status', '?')}"
        lines.append(f"Class:       {defined.get(name, name)}")
        lines.append(f"  queue:     {arn} ({state})")
    return lines


def class_definitions(settings: dict | None) -> dict[str, str]:
    """Each deployed class in the grammar of --knot-compute-classes; the default class is
    the stack-wide settings, recorded under the same keys."""
    settings = settings or {}
    named = settings.get("classes")
    records = {**(named if isinstance(named, dict) else {}), DEFAULT_CLASS: settings}
    shown = {}
    for name, record in records.items():
        try:
            shown[name] = class_from_record(name, record).describe()
        except ConfigError:  # e.g. a default with GPU types, made before classes existed
            shown[name] = f"{name} (its recorded definition is not one knot accepts now)"
    return shown


def retention_lines(settings: dict | None) -> list[str]:
    """What the stack expires, from its recorded settings and the template's constants."""
    days = (settings or {}).get("files_expiry_days", "?")
    return [
        f"Retention:   local-mode copies (s3://<bucket>/{FILES_PREFIX}) {days} days, "
        f"job specs ({SPEC_PREFIX}) {SPEC_EXPIRY_DAYS} days",
        f"             images: the newest {MAX_IMAGES} tagged, untagged after "
        f"{UNTAGGED_IMAGE_DAYS} day",
    ]


def stack_origin(args: argparse.Namespace, config: KnotConfig, region: str) -> str:
    """Where the stack name and the region came from, for a stack that is not there."""
    origins = getattr(args, "origins", None)
    if origins is None:
        return ""
    return " ".join(
        [origins.explain("stack_name", config.stack_name), origins.explain("region", region)]
    )


def _in_cli_terms(args: argparse.Namespace, text: str) -> str:
    """The report's --knot-* flags as this command spells them."""
    return in_cli_terms(text, getattr(args, "origins", None) or Origins({}, {}))


def _status(args: argparse.Namespace, config: KnotConfig) -> int:
    clients = make_clients(config)
    origin = stack_origin(args, config, clients.region)
    report = status_report(clients, find_service_role(clients, config), origin)
    print(_in_cli_terms(args, report))
    return 0


def _up(args: argparse.Namespace, config: KnotConfig) -> int:
    clients = make_clients(config)
    config = find_service_role(clients, config)
    infra = ensure_infra(clients, config)
    print(f"Stack '{infra.stack_name}' is ready in {infra.region}.")
    print(_in_cli_terms(args, status_report(clients, config)))
    return 0


def _down(args: argparse.Namespace, config: KnotConfig) -> int:
    """Show what the stack holds, then delete it: with --yes, or when asked on a terminal
    and answered yes; active jobs are ended only with --yes."""
    clients = make_clients(config)
    holdings = stack_holdings(clients, config)
    name = config.stack_name
    if holdings is None:
        origin = stack_origin(args, config, clients.region)
        print(f"Stack '{name}' does not exist in {clients.region}; nothing to delete. {origin}")
        return 0
    print(f"Stack '{name}' in {clients.region}, shared by every workflow that uses it, holds:")
    for line in holdings.lines():
        print(f"  {line}")
    if not args.yes:
        again = f"'knot --stack-name {name} infra down --yes'"
        if holdings.active_jobs:
            raise ConfigError(
                f"{len(holdings.active_jobs)} jobs are still active in stack '{name}'; "
                f"nothing was deleted. Wait for them to end, or run {again} to terminate "
                "them and delete the stack."
            )
        if not _confirmed(name):
            print(f"Nothing deleted. {again} deletes without asking.")
            return 1
    for item in teardown(clients, config, force=True):
        print(f"deleted {item}")
    return 0


def _confirmed(name: str) -> bool:
    """Ask on a terminal; with no terminal to ask on, the answer is no."""
    if not sys.stdin.isatty():
        print("No terminal to ask on.", file=sys.stderr)
        return False
    answer = input(f"Delete stack '{name}' and everything above? Type its name to confirm: ")
    return answer.strip() == name


def register(commands):
    """Add ``knot infra status|up|down [--force]`` to the ``knot`` command; return the
    ``infra`` subcommands, to which ``cli.iam`` adds its own."""
    infra = commands.add_parser("infra", help="show, create or delete knot's AWS infrastructure")
    sub = infra.add_subparsers(dest="infra_command", required=True)
    status = sub.add_parser(
        "status",
        help="show the stack and whether it matches these settings",
        description="Show the stack and compare it with the sizing settings given here, in "
        "SNAKEMAKE_KNOT_* or in a profile (as a run with them would).",
    )
    up = sub.add_parser("up", help="create or update the stack for these settings")
    for parser, handler in ((status, _status), (up, _up)):
        add_setting_flags(parser, SIZING)
        parser.set_defaults(handler=handler)
    down = sub.add_parser(
        "down",
        help="delete the stack and everything knot put in it, after showing what it holds",
        description="List what the stack holds (active jobs, each workflow's files, images), "
        "then ask before deleting it. Without a terminal, or with active jobs, nothing is "
        "deleted unless --yes is given.",
    )
    down.add_argument(
        "-y",
        "--yes",
        "--force",
        dest="yes",
        action="store_true",
        help="delete without asking, terminating active jobs (default: ask; refuse while "
        "jobs are active)",
    )
    down.set_defaults(handler=_down)
    return sub
