"""Job status in batches (DescribeJobs takes at most 100 ids), array children without a
call per child, recent jobs of the queue, and termination."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import aws_error, error_code

log = logging.getLogger(__name__)

DESCRIBE_CHUNK = 100  # DescribeJobs limit
# ListJobs returns up to 1,000 jobs a page when filtered by status (AWS Batch API
# reference, maxResults): a 10,000-child array is listed in at most 10 calls.
STATUS_LIST_PAGE = 1000
SUCCEEDED, FAILED, RUNNING, UNKNOWN = "SUCCEEDED", "FAILED", "RUNNING", "UNKNOWN"
TERMINAL = (SUCCEEDED, FAILED)


@dataclass(frozen=True)
class JobState:
    job_id: str
    status: str
    reason: str | None = None
    exit_code: int | None = None
    log_stream: str | None = None
    # Batch's own times, epoch seconds (Batch gives milliseconds), and attempts made; the
    # run record keeps them. ListJobs summaries carry the times but no attempts.
    created: float | None = None
    started: float | None = None
    stopped: float | None = None
    attempts: int | None = None
    # The ECS container instance it ran on (DescribeJobs only), for its instance type.
    container_instance: str | None = None
    # Attempts that spot reclaimed, and the seconds they ran (DescribeJobs only).
    reclaims: int = 0
    reclaimed_s: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def split_child(job_id: str) -> tuple[str, int | None]:
    """``'<parent>:<index>'`` -> (parent, index); a single job id -> (id, None)."""
    parent, sep, index = job_id.rpartition(":")
    if sep and parent and index.isdigit():
        return parent, int(index)
    return job_id, None


def chunks(items: Sequence[str], size: int = DESCRIBE_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _reason(status_reason: str | None, container_reason: str | None) -> str | None:
    # Batch puts the useful half (e.g. "OutOfMemoryError: Container killed ...") in
    # container.reason and a generic one ("Essential container in task exited") on top.
    parts = [r for r in (status_reason, container_reason) if r]
    return "; ".join(dict.fromkeys(parts)) or None


# Exit codes above 128 mean the container's process ended on a signal (128 + its number).
_SIGNALLED = {
    137: "the container was killed (SIGKILL): out of memory, or stopped from outside",
    143: "the container was stopped (SIGTERM)",
}


def describe_exit(exit_code: int | None) -> str:
    """The exit code as a user reads it, with what a signal exit means."""
    if exit_code is None:
        return "no exit code"
    note = _SIGNALLED.get(exit_code)
    return f"exit code {exit_code}: {note}" if note else f"exit code {exit_code}"


def log_stream(description: dict) -> str | None:
    stream = (description.get("container") or {}).get("logStreamName")
    if stream:
        return stream
    for attempt in reversed(description.get("attempts") or []):
        stream = (attempt.get("container") or {}).get("logStreamName")
        if stream:
            return stream
    return None


# An ECS container instance ARN, in the long (cluster named) or the old short format. Other
# values are not instances: moto puts "TBD" there, and a job on Fargate has none.
INSTANCE_ARN = re.compile(r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:container-instance/[\w/-]+")


def container_instance(description: dict) -> str | None:
    """The ECS container instance ARN of a DescribeJobs entry, from its container or, for a
    job that was retried, its last attempt that has one."""
    containers = [description.get("container") or {}]
    containers += [a.get("container") or {} for a in reversed(description.get("attempts") or [])]
    for container in containers:
        arn = container.get("containerInstanceArn")
        if isinstance(arn, str) and INSTANCE_ARN.fullmatch(arn):
            return arn
    return None


def state_from_description(description: dict) -> JobState:
    """A JobState from a DescribeJobs entry (or a ListJobs summary, which lacks logs)."""
    container = description.get("container") or {}
    return JobState(
        job_id=description["jobId"],
        status=description["status"],
        reason=_reason(description.get("statusReason"), container.get("reason")),
        exit_code=container.get("exitCode"),
        log_stream=log_stream(description),
        created=_seconds(description.get("createdAt")),
        started=_seconds(description.get("startedAt")),
        stopped=_seconds(description.get("stoppedAt")),
        attempts=_count(description.get("attempts")),
        container_instance=container_instance(description),
        **_reclaims(description.get("attempts")),
    )


# Batch's status reason of an attempt whose spot instance was taken back.
RECLAIM_REASON = "Host EC2"


def is_reclaim(reason: str | None) -> bool:
    return bool(reason) and str(reason).startswith(RECLAIM_REASON)


def _reclaims(attempts: object) -> dict:
    """How many attempts spot reclaimed, and how long they had run."""
    count, seconds = 0, 0.0
    for attempt in attempts if isinstance(attempts, list) else []:
        if isinstance(attempt, dict) and is_reclaim(attempt.get("statusReason")):
            count += 1
            start, stop = _seconds(attempt.get("startedAt")), _seconds(attempt.get("stoppedAt"))
            if start is not None and stop is not None:
                seconds += max(stop - start, 0.0)
    return {"reclaims": count, "reclaimed_s": seconds}


def _count(attempts: object) -> int | None:
    return len(attempts) if isinstance(attempts, list) else None


def _seconds(milliseconds: object) -> float | None:
    if isinstance(milliseconds, int | float) and not isinstance(milliseconds, bool):
        return milliseconds / 1000
    return None


def describe_jobs(batch_client, job_ids: Sequence[str]) -> dict[str, dict]:
    """DescribeJobs for any number of ids, 100 per call; returns id -> description."""
    found: dict[str, dict] = {}
    try:
        for chunk in chunks(list(job_ids)):
            for job in batch_client.describe_jobs(jobs=list(chunk))["jobs"]:
                found[job["jobId"]] = job
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "checking the status of Batch jobs", service="batch") from exc
    return found


class StatusPoller:
    """States of single jobs and array children, with as few Batch calls as possible."""

    def __init__(self, batch_client) -> None:
        self._batch = batch_client
        # (parent, status) -> children of that status listed so far.
        self._listed: dict[tuple[str, str], int] = {}
        # Finished children: they cannot change again.
        self._children: dict[str, JobState] = {}
        # Each array's children per status at the last poll: children move between
        # RUNNABLE, STARTING and RUNNING without a call per child (the status cadence
        # counts that as progress).
        self.summaries: dict[str, str] = {}

    def poll(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        wanted = list(dict.fromkeys(job_ids))
        split = {job_id: split_child(job_id) for job_id in wanted}
        # Children already known finished need no call; their parents may need none.
        pending = {job_id: p for job_id, (p, _) in split.items() if job_id not in self._children}
        described = describe_jobs(self._batch, list(dict.fromkeys(pending.values())))
        parents = {p for job_id, p in pending.items() if split[job_id][1] is not None}
        for parent in parents & described.keys():
            self._follow_children(parent, described[parent])
        return {job_id: self._state_of(job_id, split[job_id], described) for job_id in wanted}

    def _state_of(self, job_id: str, split: tuple[str, int | None], described: dict) -> JobState:
        parent, index = split
        if job_id in self._children:
            return self._children[job_id]
        if parent not in described:
            return JobState(job_id, UNKNOWN, f"AWS Batch has no record of job {parent}.")
        if index is None:
            return state_from_description(described[parent])
        # A child not (yet) listed as finished: Batch has it somewhere before that.
        status = described[parent]["status"]
        return JobState(job_id, RUNNING if status in TERMINAL else status)

    def _follow_children(self, parent: str, description: dict) -> None:
        summary = (description.get("arrayProperties") or {}).get("statusSummary") or {}
        self.summaries[parent] = repr(sorted(summary.items()))
        for status in TERMINAL:
            count = summary.get(status, 0)
            if count and count != self._listed.get((parent, status), 0):
                listed = self._list_children(parent, status)
                self._listed[(parent, status)] = len(listed)
                if status == FAILED:
                    listed = self._failed_details(listed)
                self._children.update({s.job_id: s for s in listed})

    def _list_children(self, parent: str, status: str) -> list[JobState]:
        try:
            pages = self._batch.get_paginator("list_jobs").paginate(
                arrayJobId=parent,
                jobStatus=status,
                PaginationConfig={"PageSize": STATUS_LIST_PAGE},
            )
            return [state_from_description(s) for page in pages for s in page["jobSummaryList"]]
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(
                exc, f"listing the children of array job {parent}", service="batch"
            ) from exc

    def _failed_details(self, listed: list[JobState]) -> list[JobState]:
        # ListJobs carries no log stream; describe only the newly failed children.
        new = [s.job_id for s in listed if s.job_id not in self._children]
        described = describe_jobs(self._batch, new)
        return [
            state_from_description(described[s.job_id]) if s.job_id in described else s
            for s in listed
        ]


def terminate_jobs(batch_client, job_ids: Iterable[str], reason: str) -> int:
    """Terminate each distinct job once (children through their array parent) and
    return how many TerminateJob calls Batch accepted."""
    parents = dict.fromkeys(split_child(job_id)[0] for job_id in job_ids)
    terminated = 0
    for job_id in parents:
        try:
            batch_client.terminate_job(jobId=job_id, reason=reason)
            terminated += 1
        except ClientError as exc:
            # Batch answers ClientException for jobs it can no longer terminate
            # (finished long ago, or unknown); cancelling carries on with the others.
            if error_code(exc) != "ClientException":
                raise aws_error(exc, f"terminating Batch job {job_id}", service="batch") from exc
            log.debug("Not terminated %s: %s", job_id, exc)
        except BotoCoreError as exc:
            raise aws_error(exc, f"terminating Batch job {job_id}", service="batch") from exc
    return terminated


def terminate_job(batch_client, job_id: str, reason: str) -> bool:
    """Terminate exactly this job (an array child alone, its siblings left running);
    False when Batch can no longer terminate it (it finished meanwhile)."""
    try:
        batch_client.terminate_job(jobId=job_id, reason=reason)
    except ClientError as exc:
        if error_code(exc) != "ClientException":
            raise aws_error(exc, f"terminating Batch job {job_id}", service="batch") from exc
        log.debug("Not terminated %s: %s", job_id, exc)
        return False
    except BotoCoreError as exc:
        raise aws_error(exc, f"terminating Batch job {job_id}", service="batch") from exc
    return True


# ---------------------------------------------------------------- recent jobs (knot jobs)


def _queue_summaries(batch_client, queue: str, since_ms: int) -> list[dict]:
    # Without a filter ListJobs returns RUNNING jobs only; a created-after filter
    # returns every status.
    pages = batch_client.get_paginator("list_jobs").paginate(
        jobQueue=queue, filters=[{"name": "AFTER_CREATED_AT", "values": [str(since_ms)]}]
    )
    # moto also lists array children in the queue; AWS lists only their parents.
    return [s for p in pages for s in p["jobSummaryList"] if split_child(s["jobId"])[1] is None]


def recent_jobs(
    batch_client,
    queues: str | list[str],
    limit: int,
    since_ms: int,
    statuses: Collection[str] = (),
    keep: Callable[[dict], bool] | None = None,
) -> list[dict]:
    """The newest ``limit`` jobs of the queues (one per compute class), described (for
    their tags): only those in ``statuses`` (if any) for which ``keep`` (if given) holds."""
    summaries = []
    for queue in [queues] if isinstance(queues, str) else queues:
        try:
            summaries += _queue_summaries(batch_client, queue, since_ms)
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(exc, f"listing jobs in queue {queue}", service="batch") from exc
    if statuses:
        summaries = [s for s in summaries if s.get("status") in statuses]
    summaries.sort(key=lambda s: s.get("createdAt", 0), reverse=True)
    found: list[dict] = []
    # Described 100 at a time (DescribeJobs' limit) until enough pass ``keep``.
    for start in range(0, len(summaries), 100):
        ids = [s["jobId"] for s in summaries[start : start + 100]]
        described = describe_jobs(batch_client, ids)
        found += [
            described[i] for i in ids if i in described and (keep is None or keep(described[i]))
        ]
        if len(found) >= limit:
            break
    return found[:limit]
