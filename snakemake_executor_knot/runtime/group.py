"""A group job: its member jobs run one after another, in the order the spec lists them
(the group's topological order), in this one container; the members a pipe() joins run
at the same time (pipes.py).

Only inputs from outside the group are staged in (an input with ``from_group`` was made by
an earlier member and is already on disk); after the last member, the outputs come home
except those with ``upload: false`` (temp() files no job outside the group needs: the host
decides, see the host's groups.py). Each member's code lives under
``MEMBERS_DIR/<rule>/`` and is imported afresh for it, so two members' rule modules
(both ``knot_rule``) never meet.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import pipes, staging, usage
from .contract import GROUP_KIND, MEMBERS_DIR, MEMBERS_DIR_ENV, RULE_DIR_ENV, RULE_MODULE
from .logs import make_missing_logs
from .report import JobFailure, Reporter
from .spec import FileItem, check_spec, file_items

# What a member shares with its group's document instead of carrying it itself (the
# config as job.py fetched it through the group's reference, once).
SHARED = ("version", "config", "envvars")
# Snakemake's rule names: identifiers, or the number it gives a rule written without one.
_RULE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def member_specs(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The members' documents, each completed with the group's shared keys and checked as
    a single job's spec is; their rule names become folder names, so they must be plain."""
    members = spec.get("members")
    if not isinstance(members, list) or not members:
        raise JobFailure("the group job's spec lists no members")
    found = []
    for doc in members:
        if not isinstance(doc, dict) or doc.get("kind") == GROUP_KIND:
            raise JobFailure("a member of the group job's spec is malformed")
        full = {**{k: spec[k] for k in SHARED if k in spec}, **doc}
        check_spec(full, "the group job's spec")
        if not isinstance(full["rule"], str) or not _RULE_NAME.match(full["rule"]):
            raise JobFailure(f"a member of the group names the rule {full['rule']!r}")
        found.append(full)
    return found


def outside_inputs(members: list[dict[str, Any]]) -> list[FileItem]:
    """Inputs not made inside the group, once each."""
    raw = [i for m in members for i in m["input"]["items"] if not i.get("from_group")]
    unique = list({i["path"]: i for i in raw}.values())
    return file_items({"input": {"items": unique}}, "input")


def uploaded_outputs(member: dict[str, Any]) -> list[FileItem]:
    items = [i for i in member["output"]["items"] if i.get("upload", True)]
    return file_items({"output": {"items": items}}, "output")


def member_root(rule: str, env: Mapping[str, str]) -> str:
    return os.path.join(env.get(MEMBERS_DIR_ENV, MEMBERS_DIR), rule)


@contextlib.contextmanager
def member_code(rule: str, env: Mapping[str, str]) -> Iterator[None]:
    """For one member: its rule module first on sys.path, its folder as the rule folder
    (RULE_DIR_ENV, also read by the prelude's ``workflow.basedir``); afterwards every
    module imported from its folder is forgotten, so the next member imports its own."""
    root = member_root(rule, env)
    saved_path, saved_env = list(sys.path), os.environ.get(RULE_DIR_ENV)
    sys.path.insert(0, os.path.join(root, "lib"))
    sys.modules.pop(RULE_MODULE, None)
    importlib.invalidate_caches()
    os.environ[RULE_DIR_ENV] = os.path.join(root, "rule")
    try:
        yield
    finally:
        sys.path[:] = saved_path
        if saved_env is None:
            os.environ.pop(RULE_DIR_ENV, None)
        else:
            os.environ[RULE_DIR_ENV] = saved_env
        _forget_modules(root)


def _forget_modules(root: str) -> None:
    prefix = root.rstrip("/") + "/"
    for name, module in list(sys.modules.items()):
        if name == RULE_MODULE or (getattr(module, "__file__", None) or "").startswith(prefix):
            del sys.modules[name]


class GroupRun:
    """The group's counterpart of ``job.Job``; ``make_job`` builds one member's Job."""

    def __init__(
        self,
        spec: dict[str, Any],
        s3,
        reporter: Reporter,
        env: Mapping[str, str],
        meter: usage.Meter,
        make_job: Callable[..., Any],
    ):
        self.s3, self.reporter, self.meter = s3, reporter, meter
        self.members = member_specs(spec)
        self.jobs = []
        for member in self.members:
            member_env = {
                **env,
                RULE_DIR_ENV: os.path.join(member_root(member["rule"], env), "rule"),
            }
            reporter_m = Reporter(member["rule"], member["jobid"])
            self.jobs.append(make_job(member, s3, reporter_m, member_env, usage.Meter()))

    def execute(self) -> int:
        for job in self.jobs:
            job.make_folders()
        with staging.make_transfer_manager(self.s3) as manager:
            inputs = outside_inputs(self.members)
            plan = staging.plan_downloads(self.s3, inputs)
            self.reporter.progress(f"downloading {len(inputs)} inputs ({len(plan)} files)")
            usage.timed(self.meter.stage_in, plan, lambda p: staging.download(manager, p))
            ran = self.run_members()
            succeeded = len(ran) == len(self.jobs) and all(ok for _, ok in ran)
            self.stage_out(manager, [job for job, _ in ran], succeeded)
        return 0 if succeeded else 1

    def run_members(self) -> list[tuple[Any, bool]]:
        """Run members in order until one fails (the members a pipe joins at the same
        time, see pipes.py); each with whether it succeeded."""
        self.meter.rule_started()
        ran: list[tuple[Any, bool]] = []
        try:
            for stage in pipes.stages(self.members):
                jobs = [self.jobs[index] for index in stage]
                results = self.run_stage(jobs)
                ran.extend(zip(jobs, results, strict=True))
                if not all(results):
                    break
        finally:
            self.meter.rule_ended()
        return ran

    def run_stage(self, jobs: list[Any]) -> list[bool]:
        if len(jobs) == 1:
            return [run_member(jobs[0])]
        pipes.make_fifos(path for job in jobs for path in pipes.pipe_paths(job.spec))
        self.reporter.progress(
            "running " + ", ".join(job.spec["rule"] for job in jobs) + " at once (pipes)"
        )
        return pipes.run_together(jobs, run_member)

    def stage_out(self, manager, ran: list, succeeded: bool) -> None:
        """Logs of the members that ran; outputs and benchmarks only after every member
        succeeded, as for a single job."""
        for job in ran:
            make_missing_logs(job.logs)
        logs = staging.plan_uploads(i for j in ran for i in j.logs if os.path.exists(i.path))
        outputs: list[FileItem] = []
        if succeeded:
            outputs = [i for m in self.members for i in uploaded_outputs(m)]
            outputs += [j.bench for j in ran if j.bench]
        transfers = staging.plan_uploads(outputs) + logs
        self.reporter.progress(f"uploading {len(outputs)} outputs and {len(logs)} logs")
        usage.timed(self.meter.stage_out, transfers, lambda p: staging.upload(manager, p))
        if succeeded:
            staging.upload_manifests(self.s3, outputs)

    def member_usage(self) -> list[dict[str, Any]]:
        """Each member's own run time and CPU, for the group's usage document."""
        found = []
        for job in self.jobs:
            doc = job.meter.document()
            if doc["run_s"] is not None:
                found.append({"rule": job.spec["rule"], "jobid": job.spec["jobid"], **_times(doc)})
        return found


def run_member(job: Any) -> bool:
    """One member's code, with its own rule module, and its outputs checked."""
    with member_code(job.spec["rule"], job.env):
        return job.run_user_code() and job.check_outputs()


def _times(doc: dict[str, Any]) -> dict[str, Any]:
    return {"run_s": doc["run_s"], "cpu_s": doc["cpu_s"]}
