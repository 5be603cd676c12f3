"""``knot infra status|up|down``: show, create or delete the shared stack."""

from __future__ import annotations

import argparse

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
from ..aws.teardown import teardown
from ..aws.template.storage import (
    FILES_PREFIX,
    MAX_IMAGES,
    SPEC_EXPIRY_DAYS,
    SPEC_PREFIX,
    UNTAGGED_IMAGE_DAYS,
)
from ..config.classes import DEFAULT_CLASS, class_from_record
from ..config.settings import KnotConfig
from ..errors import ConfigError


def status_report(clients: Clients, config: KnotConfig) -> str:
    """A human-readable summary of the stack and whether it matches these settings."""
    ops = StackOps(clients, config.stack_name)
    stack = ops.describe()
    where = f"'{config.stack_name}' in {clients.region}"
    if stack is None:
        return f"Stack {where} does not exist. 'knot infra up' (or any knot run) creates it."
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


def _status(args: argparse.Namespace, config: KnotConfig) -> int:
    clients = make_clients(config)
    print(status_report(clients, find_service_role(clients, config)))
    return 0


def _up(args: argparse.Namespace, config: KnotConfig) -> int:
    clients = make_clients(config)
    config = find_service_role(clients, config)
    infra = ensure_infra(clients, config)
    print(f"Stack '{infra.stack_name}' is ready in {infra.region}.")
    print(status_report(clients, config))
    return 0


def _down(args: argparse.Namespace, config: KnotConfig) -> int:
    deleted = teardown(make_clients(config), config, force=args.force)
    if not deleted:
        print(f"Stack '{config.stack_name}' does not exist; nothing to delete.")
    for item in deleted:
        print(f"deleted {item}")
    return 0


def register(commands):
    """Add ``knot infra status|up|down [--force]`` to the ``knot`` command; return the
    ``infra`` subcommands, to which ``cli.iam`` adds its own."""
    infra = commands.add_parser("infra", help="show, create or delete knot's AWS infrastructure")
    sub = infra.add_subparsers(dest="infra_command", required=True)
    sub.add_parser("status", help="show the stack and whether it is up to date").set_defaults(
        handler=_status
    )
    sub.add_parser("up", help="create or update the stack").set_defaults(handler=_up)
    down = sub.add_parser("down", help="delete the stack and everything knot put in it")
    down.add_argument(
        "--force", action="store_true", help="terminate active jobs instead of refusing"
    )
    down.set_defaults(handler=_down)
    return sub
