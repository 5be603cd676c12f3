"""What the host does when Batch says a job has ended: in local mode, bring its outputs,
logs and benchmark home (in storage mode, a checkpoint's outputs); on failure, say why, with
the tail of its log; and notice a job Batch no longer knows.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

from ..aws.logs import printable, read_last
from ..aws.status import JobState, describe_exit
from ..errors import KnotError
from ..jobs.group import benchmarks, failed_member, home_items, job_label, jobs_of, snakemake_job
from ..jobs.spec import spec_path, storage_uri
from ..jobs.staging import LocalStaging
from ..runtime.contract import GROUP_KIND

if TYPE_CHECKING:
    from ..jobs.group import AnyJob

LOG_TAIL_LINES = 30
LOST_AFTER_POLLS = 5
FAILED_LOGS = Path(".snakemake", "log", "knot")
# A failed job's log is saved whole up to this size; beyond it, its end is kept.
MAX_SAVED_LOG_BYTES = 8 * 1024 * 1024


class Outcomes:
    """The host's side of a job's end (``staging``: local mode's transfers; ``logs``: a
    CloudWatch Logs client and the stack's log group)."""

    def __init__(self, staging: LocalStaging, logs: object, log_group: str) -> None:
        self.staging, self.logs, self.log_group = staging, logs, log_group

    def bring_home(self, info: SubmittedJobInfo) -> str | None:
        """Local mode: the job's outputs, logs and benchmark, downloaded and checked. None
        when all came home, else what went wrong (the job then counts as failed)."""
        for job in jobs_of(snakemake_job(info.job)):
            forget_directory_misses(job)
        spec = aux(info)["spec"]
        try:
            self._fetch(spec, "output", must_exist=True)
            self._fetch(spec, "log", must_exist=False)
            self._fetch_benchmark(spec)
        except KnotError as exc:
            return f"AWS Batch job {info.external_jobid}: {exc}"
        return None

    async def retrieve_checkpoint(self, info: SubmittedJobInfo) -> str | None:
        """Storage mode: bring a checkpoint's outputs to their local paths, where the host's
        input functions read them (``glob_wildcards`` on the checkpoint's folder), as after
        a local run; Snakemake retrieves nothing itself for a job that ran remotely. A
        directory is exactly what its manifest lists (the storage plugin would copy every
        key under the prefix). None when all came home, else what went wrong."""
        try:
            for job in jobs_of(snakemake_job(info.job)):
                await self._retrieve_checkpoint(job)
        except KnotError as exc:
            return f"AWS Batch job {info.external_jobid}: {exc}"
        return None

    async def _retrieve_checkpoint(self, job: AnyJob) -> None:
        if not getattr(job, "is_checkpoint", False):
            return
        forget_directory_misses(job)
        for f in job.output:
            if not getattr(f, "is_storage", False):
                continue
            if getattr(f, "is_directory", False):
                uri = storage_uri(f.storage_object.query)
                self.staging.retrieve_directory(uri, spec_path(str(f)), job.rule.name)
            else:
                await f.retrieve_from_storage()

    def failure(self, info: SubmittedJobInfo, state: JobState) -> tuple[str, list[str]]:
        """The message for Snakemake, with the log's last lines, and the saved log."""
        spec = aux(info)["spec"]
        lines, cut = read_last(self.logs, self.log_group, state.log_stream, MAX_SAVED_LOG_BYTES)
        saved = save_log(batch_id(info), lines, cut)
        tail = lines[-LOG_TAIL_LINES:]
        # The job's own log files are a courtesy; the error below is what matters.
        with contextlib.suppress(KnotError):
            self._fetch(spec, "log", must_exist=False)
        msg = (
            f"AWS Batch job {info.external_jobid} of {_what_failed(spec, tail)} failed: "
            f"{printable(state.reason or 'no reason given')} ({describe_exit(state.exit_code)}).\n"
            f"Last lines of its log ({state.log_stream or 'no log stream'}):\n"
            + "\n".join(tail or ["<log empty or not found>"])
            + f"\nIts whole log (up to {MAX_SAVED_LOG_BYTES >> 20} MiB): {saved}"
        )
        return msg, [str(saved)]

    def _fetch(self, spec: dict, kind: str, must_exist: bool) -> None:
        """The job's files of one kind (output, log) that live in knot's bucket (of a
        group: those that come home, see jobs/group.py)."""
        items = [i for i in home_items(spec, kind) if self.staging.holds(i["uri"])]
        self.staging.download_outputs(items, spec["rule"], must_exist=must_exist)

    def _fetch_benchmark(self, spec: dict) -> None:
        for bench in benchmarks(spec):
            if self.staging.holds(bench["uri"]):
                item = {**bench, "directory": False}
                self.staging.download_outputs([item], spec["rule"], must_exist=False)


def batch_id(info: SubmittedJobInfo) -> str:
    """The Batch job id knot gave the job when it submitted or adopted it."""
    if info.external_jobid is None:
        raise AssertionError(f"job {info.job.jobid} was reported without a Batch job id")
    return info.external_jobid


def aux(info: SubmittedJobInfo) -> dict:
    """What knot keeps with a submitted job: its spec, and how often Batch did not know it."""
    if info.aux is None:
        info.aux = {}
    return info.aux


def save_log(job_id: str, lines: list[str], cut: bool = False) -> Path:
    """The job's log in FAILED_LOGS; when it was over the cap (``cut``), a first line says
    that its beginning was left out."""
    path = FAILED_LOGS / f"{job_id.replace(':', '-')}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = [_CUT.format(mib=MAX_SAVED_LOG_BYTES >> 20)] if cut else []
    path.write_text("\n".join(head + lines) + "\n")
    return path


_CUT = "[knot: this log was longer than {mib} MiB; its beginning is left out, its end kept]"


def is_lost(info: SubmittedJobInfo, state: JobState | None) -> bool:
    """A job Batch does not know, several polls in a row. Not on the first poll: a job
    may not be visible right after submission."""
    unknown = state is None or state.status == "UNKNOWN"
    seen = aux(info)
    seen["unknown_polls"] = seen.get("unknown_polls", 0) + 1 if unknown else 0
    return seen["unknown_polls"] >= LOST_AFTER_POLLS


def lost_message(info: SubmittedJobInfo) -> str:
    return (
        f"AWS Batch no longer knows job {info.external_jobid} of rule "
        f"'{job_label(snakemake_job(info.job))}' (it was deleted, or the queue was torn down). "
        "Run the workflow again to resubmit it."
    )


def forget_directory_misses(job: AnyJob) -> None:
    """snakemake-storage-plugin-s3 memoises "not a directory" (``_is_dir``) when Snakemake
    checks a missing directory() output before the job; after the job wrote it, that stale
    answer would make the output look missing. Forget it, so the plugin lists again."""
    for f in job.output:
        if getattr(f, "is_storage", False) and getattr(f, "is_directory", False):
            obj = f.storage_object
            if getattr(obj, "_is_dir", None) is False:
                obj._is_dir = None


def _what_failed(spec: dict, tail: list[str] | None) -> str:
    """``rule 'x'``; for a group, the member rule that failed, as its log tail says."""
    if spec["kind"] != GROUP_KIND:
        return f"rule '{spec['rule']}'"
    rules = ", ".join(sorted({m["rule"] for m in spec["members"]}))
    failed = failed_member(spec, tail or [])
    where = f"rule '{failed}' in " if failed else ""
    return f"{where}group '{spec['group']}' (rules {rules})"
