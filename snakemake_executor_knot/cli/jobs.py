"""``knot jobs`` and ``knot logs``: recent jobs of the queue, and one job's whole log."""

from __future__ import annotations

import argparse
import sys
import time

from ..aws.clients import Clients, make_clients
from ..aws.logs import LogFollower, job_log
from ..aws.stack import Infra, describe_infra
from ..aws.status import recent_jobs
from ..aws.submit import RULE_TAG
from ..config.settings import KnotConfig
from ..errors import ConfigError


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def job_row(description: dict, now_ms: int) -> list[str]:
    """job id, name, rule, status, duration."""
    name = description.get("jobName", "")
    rule = (description.get("tags") or {}).get(RULE_TAG) or name.split("-", 1)[0]
    started, stopped = description.get("startedAt"), description.get("stoppedAt")
    duration = ((stopped or now_ms) - started) / 1000 if started else None
    return [description["jobId"], name, rule, description["status"], format_duration(duration)]


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
        raise ConfigError(
            f"knot's infrastructure (stack '{config.stack_name}') does not exist in region "
            f"{clients.region}. Create it with 'knot infra up'."
        )
    return clients, infra


def _jobs(args: argparse.Namespace, config: KnotConfig) -> int:
    clients, infra = _deployed(config)
    since_ms = int((time.time() - args.hours * 3600) * 1000)
    jobs = recent_jobs(clients.batch, [*infra.queues.values()], args.limit, since_ms)
    now_ms = int(time.time() * 1000)
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
    jobs.set_defaults(handler=_jobs)
    logs = commands.add_parser("logs", help="print a job's CloudWatch log")
    logs.add_argument("job", metavar="JOB", help="job id (array child: <id>:<index>)")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="stream the log until the job ends"
    )
    logs.set_defaults(handler=_logs)
