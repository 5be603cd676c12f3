"""One job from start to end: spec, inputs, the rule's code, checks, uploads."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from . import benchmark, cachestage, staging, usage
from .config import with_config
from .contract import GROUP_KIND
from .group import GroupRun
from .kinds import run_kind
from .logs import make_missing_logs
from .namespace import Namespace
from .report import JobFailure, Reporter, append_text
from .spec import (
    FileItem,
    array_index,
    benchmark_item,
    benchmark_repeats,
    fetch_spec,
    file_items,
    is_external,
    make_read_only,
    spec_location,
    with_external_inputs,
)

# The empty file Snakemake keeps in a directory() output it ran (its time is the folder's).
TIMESTAMP_FILE = ".snakemake_timestamp"


def output_problems(items: list[FileItem]) -> list[str]:
    """What is wrong with the declared outputs after the rule's code returned."""
    problems = []
    for item in items:
        if not os.path.exists(item.path):
            problems.append(f"{item.path} (missing)")
        elif item.directory and not os.path.isdir(item.path):
            problems.append(f"{item.path} (declared a directory() but is a file)")
        elif not item.directory and os.path.isdir(item.path):
            problems.append(f"{item.path} (a directory, but not declared with directory())")
        elif item.non_empty and os.path.getsize(item.path) == 0:
            problems.append(f"{item.path} (empty, but marked ensure(non_empty=True))")
        elif item.checksum and not _has_checksum(item.path, item.checksum):
            problems.append(f"{item.path} (its checksum is not ensure()'s {item.checksum})")
    return problems


def _has_checksum(path: str, checksum: str) -> bool:
    """Whether the file's digest is ``<algorithm>:<hex>``, as ensure() asks."""
    algorithm, _, expected = checksum.partition(":")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return hmac.compare_digest(digest.hexdigest(), expected)


def touch_outputs(items: list[FileItem]) -> None:
    """``touch()`` outputs: after the rule's code, each is created or its time set to now,
    as Snakemake does after a job (the rule itself need not write them)."""
    for item in items:
        if item.touch:
            _touch(item.path)


def mark_directory_outputs(items: list[FileItem]) -> None:
    """Every directory() output gets Snakemake's ``.snakemake_timestamp``, empty, with the
    time now: Snakemake touches it after every job it runs, locally or as a remote job's
    own process, and its mtime stands for the folder's. It also keeps an empty folder in
    S3, which holds no empty folder."""
    for item in items:
        if item.directory and os.path.isdir(item.path) and not os.path.islink(item.path):
            _touch(os.path.join(item.path, TIMESTAMP_FILE))


def _touch(path: str) -> None:
    """Create ``path`` empty if it is missing, and set its times to now."""
    with open(path, "a", encoding="utf-8"):
        pass
    os.utime(path)


def parent_folders(spec: dict[str, Any]) -> set[str]:
    """Folders to create before the job: parents of every file, and directory inputs."""
    items = [i for s in ("input", "output", "log") for i in file_items(spec, s)]
    bench = benchmark_item(spec)
    if bench:
        items.append(bench)
    folders = {os.path.dirname(os.path.normpath(i.path)) for i in items}
    folders.update(i.path for i in file_items(spec, "input") if i.directory)
    return {folder for folder in folders if folder}


def remove_outputs(items: list[FileItem]) -> None:
    """Remove each output (file, link or folder) that exists before the job runs."""
    for item in items:
        if os.path.isdir(item.path) and not os.path.islink(item.path):
            shutil.rmtree(item.path)
        elif os.path.lexists(item.path):
            os.remove(item.path)


class Job:
    def __init__(
        self,
        spec: dict[str, Any],
        s3,
        reporter: Reporter,
        env: Mapping[str, str],
        meter: usage.Meter | None = None,
    ):
        spec = with_external_inputs(spec)
        self.spec = spec
        self.meter = meter or usage.Meter()
        self.s3 = s3
        self.reporter = reporter
        self.env = env
        try:
            self.ns = Namespace.from_spec(spec)
            self.repeats = benchmark_repeats(spec)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise JobFailure(f"the job spec is malformed: {exc!r}") from exc
        self.outputs = file_items(spec, "output")
        self.logs = file_items(spec, "log")
        self.bench = benchmark_item(spec)

    def make_folders(self) -> None:
        """Outputs cleared, then the folders the job needs. A Batch retry runs in a new
        container, but nothing of an earlier attempt may count as this one's output: an
        output that exists before the rule's code runs is removed, as Snakemake does."""
        remove_outputs(self.outputs)
        for folder in sorted(parent_folders(self.spec)):
            os.makedirs(folder, exist_ok=True)

    def execute(self) -> int:
        self.make_folders()
        with staging.make_transfer_manager(self.s3) as manager:
            self.stage_in(manager)
            succeeded = self.run_user_code() and self.check_outputs()
            self.stage_out(manager, succeeded)
        return 0 if succeeded else 1

    def stage_in(self, manager) -> None:
        inputs = file_items(self.spec, "input")
        plan = staging.plan_downloads(self.s3, inputs)
        self.reporter.progress(f"downloading {len(inputs)} inputs ({len(plan)} files)")
        usage.timed(self.meter.stage_in, plan, lambda p: staging.download(manager, p))
        for item in inputs:
            if is_external(item) and os.path.exists(item.path):
                make_read_only(item.path)

    def run_user_code(self) -> bool:
        """The rule's code, once, or with ``benchmark: repeat(path, n)`` n times, as
        Snakemake runs it: one benchmark row per run, the outputs of the last one kept."""
        rows = []
        for _ in range(self.repeats):
            ran = self.run_once()
            if ran is None:
                return False
            rows.append(benchmark.record(*ran))
        if self.bench:
            benchmark.write_rows(self.bench.path, rows)
        return True

    def run_once(self) -> tuple[benchmark.Usage, benchmark.Usage] | None:
        """Usage before and after one run of the rule's code; None when it failed."""
        self.reporter.progress(f"running ({self.spec['kind']})")
        start = self.meter.rule_started()
        try:
            run_kind(self.spec, self.ns, self.env)
        except JobFailure as exc:
            self.fail(str(exc))
            return None
        except SystemExit as exc:
            if exc.code not in (None, 0):
                self.reporter.user_error(exc, self.first_log)
                return None
        # User code may raise anything; it must end up in the log and stderr, not kill us
        # before the logs are uploaded.
        except Exception as exc:  # noqa: BLE001
            self.reporter.user_error(exc, self.first_log)
            return None
        finally:
            end = self.meter.rule_ended()
        return start, end

    def check_outputs(self) -> bool:
        touch_outputs(self.outputs)
        problems = output_problems(self.outputs)
        if not problems:
            mark_directory_outputs(self.outputs)
        if problems:
            listed = ", ".join(problems)
            self.fail(f"the rule finished but these declared outputs are wrong: {listed}")
        return not problems

    def fail(self, message: str) -> None:
        self.reporter.failure(message)
        if self.first_log:
            append_text(self.first_log, f"{self.reporter.prefix}: FAILED: {message}\n")

    @property
    def first_log(self) -> str | None:
        return self.logs[0].path if self.logs else None

    def stage_out(self, manager, succeeded: bool) -> None:
        """Upload logs that exist; outputs and benchmark only after success, so a failed
        job never leaves outputs in S3 that look complete."""
        make_missing_logs(self.logs)
        logs = staging.plan_uploads(i for i in self.logs if os.path.exists(i.path))
        outputs = staging.plan_uploads(self.outputs) if succeeded else []
        bench = staging.plan_uploads([self.bench]) if succeeded and self.bench else []
        what = [f"{len(self.outputs)} outputs ({len(outputs)} files)"] if succeeded else []
        what += [f"{len(logs)} logs"] + (["the benchmark"] if bench else [])
        self.reporter.progress("uploading " + ", ".join(what))
        usage.timed(
            self.meter.stage_out, outputs + logs + bench, lambda p: staging.upload(manager, p)
        )
        if succeeded:
            staging.upload_manifests(self.s3, self.outputs)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    if hasattr(sys.stdout, "reconfigure"):  # user prints interleave with our stderr lines
        sys.stdout.reconfigure(line_buffering=True)
    reporter, meter = Reporter(), usage.Meter()
    s3 = location = None
    try:
        s3 = staging.make_s3_client()
        location = spec_location(env)
        spec = fetch_spec(s3, location)
        reporter = Reporter(spec["rule"], spec["jobid"])
        spec = with_config(s3, spec)  # once, also for a group's members
        if spec["kind"] == GROUP_KIND:
            group = GroupRun(spec, s3, reporter, env, meter, Job)
            status = group.execute()
            meter.members = group.member_usage()
        else:
            status = Job(spec, s3, reporter, env, meter).execute()
    except (JobFailure, OSError) as exc:  # OSError: folders or files we could not write
        reporter.failure(str(exc))
        status = None
    if location is not None:  # what the job used goes home even when it failed
        meter.exit_status = 1 if status is None else status
        document = meter.document() | cachestage.usage_fields()  # what the cache did
        usage.send(s3, location, array_index(env), document)
    if status is None:
        return 1
    reporter.progress("done" if status == 0 else "failed")
    return status
