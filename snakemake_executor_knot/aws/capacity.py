"""Why a job may wait forever: the compute environments behind the queue are INVALID,
disabled, or at their maximum vCPUs. Asked only when a job has been RUNNABLE for a long time,
and at most once per threshold, never per poll."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import aws_error
from .status import JobState

RUNNABLE_WARN_S = 600.0  # RUNNABLE this long means no capacity is coming soon


def describe_queues(batch_client, queues: list[str]) -> list[dict]:
    try:
        return batch_client.describe_job_queues(jobQueues=queues)["jobQueues"]
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"describing job queues {', '.join(queues)}", service="batch") from exc


def queue_environments(batch_client, queue: str) -> list[str]:
    """The compute environments of a job queue, in the queue's order."""
    queues = describe_queues(batch_client, [queue])
    orders = [o for q in queues for o in q.get("computeEnvironmentOrder") or []]
    return [o["computeEnvironment"] for o in sorted(orders, key=lambda o: o.get("order", 0))]


def describe_environments(batch_client, arns: list[str]) -> list[dict]:
    try:
        reply = batch_client.describe_compute_environments(computeEnvironments=arns)
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "describing compute environments", service="batch") from exc
    return reply["computeEnvironments"]


def environment_problems(environments: Iterable[dict]) -> list[str]:
    """What keeps each compute environment from starting jobs (pure)."""
    problems = []
    for env in environments:
        name = env.get("computeEnvironmentName") or env.get("computeEnvironmentArn", "?")
        resources = env.get("computeResources") or {}
        if env.get("status") == "INVALID":
            reason = env.get("statusReason") or "no reason given"
            problems.append(f"compute environment {name} is INVALID ({reason})")
        elif env.get("state") == "DISABLED":
            problems.append(f"compute environment {name} is DISABLED")
        elif (
            resources.get("maxvCpus") and resources.get("desiredvCpus", 0) >= resources["maxvCpus"]
        ):
            problems.append(
                f"compute environment {name} is at its maximum of {resources['maxvCpus']} "
                "vCPUs (raise --knot-max-vcpus, or wait for running jobs to end)"
            )
    return problems


class RunnableWatch:
    """Remembers when each job was first seen RUNNABLE; past ``threshold`` seconds it asks
    what the compute environments are doing (once per threshold) and says so once per cause."""

    def __init__(self, describe: Callable[[], list[dict]], threshold: float = RUNNABLE_WARN_S):
        self.describe = describe
        self.threshold = threshold
        self.since: dict[str, float] = {}
        self.checked_at: float | None = None
        self.warned: set[str] = set()

    def update(self, states: Iterable[JobState], now: float) -> list[str]:
        """New warnings (each names the cause and how many jobs wait on it)."""
        runnable = {s.job_id for s in states if s.status == "RUNNABLE"}
        self.since = {j: self.since.get(j, now) for j in runnable}
        waiting = [j for j, t in self.since.items() if now - t >= self.threshold]
        if not waiting or (self.checked_at is not None and now - self.checked_at < self.threshold):
            return []
        self.checked_at = now
        new = [p for p in environment_problems(self.describe()) if p not in self.warned]
        self.warned.update(new)
        minutes = self.threshold / 60
        return [
            f"knot: {len(waiting)} job(s) RUNNABLE for over {minutes:g} min: {problem}."
            for problem in new
        ]
