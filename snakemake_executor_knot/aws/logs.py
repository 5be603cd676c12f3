"""CloudWatch Logs of Batch jobs: the tail shown when a job fails, and a whole job's log for
``knot logs``."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import KnotError, aws_error, error_code
from .status import describe_jobs, log_stream

# Where AWS Batch (and moto) put job logs when the job definition names no group.
BATCH_DEFAULT_LOG_GROUP = "/aws/batch/job"


def log_tail(logs_client, log_group: str, stream: str | None, lines: int = 30) -> list[str]:
    """The last ``lines`` messages of a CloudWatch log stream; [] if there is none."""
    if not stream:
        return []
    try:
        events = logs_client.get_log_events(
            logGroupName=log_group, logStreamName=stream, limit=lines, startFromHead=False
        )["events"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc
    return [event["message"] for event in events]


def read_log(logs_client, log_group: str, stream: str) -> list[str] | None:
    """Every message of a log stream, oldest first; None if the stream does not exist."""
    messages: list[str] = []
    kwargs = {"logGroupName": log_group, "logStreamName": stream, "startFromHead": True}
    try:
        while True:
            page = logs_client.get_log_events(**kwargs)
            messages.extend(event["message"] for event in page["events"])
            # The forward token repeats once the end of the stream is reached.
            if not page["events"] or page.get("nextForwardToken") == kwargs.get("nextToken"):
                return messages
            kwargs["nextToken"] = page["nextForwardToken"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"reading log stream {stream}", service="logs") from exc


def _log_groups(description: dict, infra_group: str) -> list[str]:
    options = ((description.get("container") or {}).get("logConfiguration") or {}).get(
        "options"
    ) or {}
    groups = [options.get("awslogs-group"), infra_group, BATCH_DEFAULT_LOG_GROUP]
    return list(dict.fromkeys(g for g in groups if g))


def job_log(batch_client, logs_client, job_id: str, infra_group: str) -> list[str]:
    """The whole CloudWatch log of one job (or array child)."""
    description = describe_jobs(batch_client, [job_id]).get(job_id)
    if description is None:
        raise KnotError(f"AWS Batch has no job {job_id}. List recent jobs with 'knot jobs'.")
    if (description.get("arrayProperties") or {}).get("size"):
        raise KnotError(
            f"Job {job_id} is an array job; its children have the logs. Ask for one "
            f"child, e.g. 'knot logs {job_id}:0'."
        )
    stream = log_stream(description)
    if stream is None:
        raise KnotError(f"Job {job_id} has no log yet (status {description['status']}).")
    for group in _log_groups(description, infra_group):
        messages = read_log(logs_client, group, stream)
        if messages is not None:
            return messages
    raise KnotError(f"The log stream {stream} of job {job_id} no longer exists.")
