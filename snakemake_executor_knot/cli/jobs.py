"""``knot jobs`` and ``knot logs``: recent jobs of the queue, and one job's whole log."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..aws.clients import Clients, make_clients
from ..aws.logs import LogFollower, job_log
from ..aws.stack import Infra, describe_infra
from ..aws.status import recent_jobs
from ..aws.submit import RULE_TAG
from ..config.settings import KnotConfig
from ..errors import SettingError

STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def job_rule(description: dict) -> str:
    """The job's rule: its rule tag, else the start of its name."""
    name = str(description.get("jobName", ""))
    return str((description.get("tags") or {}).get(RULE_TAG) or name.split("-", 1)[0])


def _seconds(description: dict, now_ms: int) -> float | None:
    started, stopped = description.get("startedAt"), description.get("stoppedAt")
    return ((stopped or now_ms) - started) / 1000 if started else None


def job_row(description: dict, now_ms: int) -> list[str]:
    """job id, name, rule, status, duration."""
    name = description.get("jobName", "")
    duration = format_duration(_seconds(description, now_ms))
    return [description["jobId"], name, job_rule(description), description["status"], duration]


def job_record(description: dict, now_ms: int) -> dict:
    """One job for ``knot jobs --json``: the table's columns, times in ms since the epoch."""
    array = description.get("arrayProperties") or {}
    return {
        "job_id": description["jobId"],
        "name": description.get("jobName", ""),
        "rule": job_rule(description),
        "status": description["status"],
        "status_reason": description.get("statusReason"),
        "created_at": description.get("createdAt"),
        "started_at": description.get("startedAt"),
        "stopped_at": description.get("stoppedAt"),
        "seconds": _seconds(description, now_ms),
        "array_size": array.get("size"),
    }


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _deployed(config: KnotConfig) -> tuple[Clients, Infra]:
    clients = make_clients(config)
    infra = describe_infra(clients, config)
    if infra is None:
        raise SettingError(
            f"knot's infrastructure (stack '{config.stack_name}') does not exist in region "
            f"{clients.region}. Create it with 'knot infra up', or name the stack and "
            "region it is in:",
            "stack_name",
            "region",
        )
    return clients, infra


def _statuses(text: str) -> set[str]:
    wanted = {part.strip().upper() for part in text.split(",") if part.strip()}
    unknown = wanted - set(STATUSES)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown status {', '.join(sorted(unknown))}; pick from {', '.join(STATUSES)}"
        )
    return wanted


def _jobs(args: argparse.Namespace, config: KnotConfig) -> int:
    clients, infra = _deployed(config)
    since_ms = int((time.time() - args.hours * 3600) * 1000)
    statuses = set().union(*args.status) if args.status else set()
    rules = set(args.rule)
    jobs = recent_jobs(
        clients.batch,
        [*infra.queues.values()],
        args.limit,
        since_ms,
        statuses=statuses,
        keep=(lambda job: job_rule(job) in rules) if rules else None,
    )
    now_ms = int(time.time() * 1000)
    if args.json:
        print(json.dumps([job_record(job, now_ms) for job in jobs], indent=2))
        return 0
    headers = ["JOB ID", "NAME", "RULE", "STATUS", "DURATION"]
    print(format_table(headers, [job_row(job, now_ms) for job in jobs]))
    return 0


def _logs(args: argparse.Namespace, config: KnotConfig) -> int:
    clients, infra = _deployed(config)
    if args.follow:
        follower = LogFollower(clients.batch, clients.logs, args.job, infra.log_group)
        status = follower.follow(lambda line: print(line, flush=True))
        print(f"knot: job {args.job} ended: {status}", file=sys.stderr)
        return 0 if status == "SUCCEEDED" else 1
    for line in job_log(clients.batch, clients.logs, args.job, infra.log_group):
        print(line)
    return 0


def register(commands) -> None:
    """Add ``knot jobs`` and ``knot logs JOB`` to the ``knot`` command."""
    jobs = commands.add_parser("jobs", help="recent jobs in knot's job queue")
    jobs.add_argument("--limit", type=int, default=50, help="most jobs to show (default 50)")
    jobs.add_argument(
        "--hours", type=float, default=24.0, help="jobs created in the last HOURS (default 24)"
    )
    jobs.add_argument(
        "--status",
        type=_statuses,
        action="append",
        metavar="STATUS[,STATUS]",
        help=f"only jobs in these states, of {', '.join(STATUSES)} (repeatable; default: all)",
    )
    jobs.add_argument(
        "--rule",
        action="append",
        default=[],
        help="only this rule's jobs (repeatable; default: all)",
    )
    jobs.add_argument(
        "--json", action="store_true", help="print the jobs as a JSON list (default: a table)"
    )
    jobs.set_defaults(handler=_jobs)
    logs = commands.add_parser("logs", help="print a job's CloudWatch log")
    logs.add_argument("job", metavar="JOB", help="job id (array child: <id>:<index>)")
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="stream the log until the job ends (default: print it once)",
    )
    logs.set_defaults(handler=_logs)
