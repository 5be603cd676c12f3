"""A finished job on the host: its failure message and, in storage mode, a checkpoint's
directory brought home."""

from __future__ import annotations

from types import SimpleNamespace

from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

from snakemake_executor_knot.aws.status import JobState
from snakemake_executor_knot.jobs.staging import LocalStaging
from snakemake_executor_knot.run.outcome import Outcomes

from ..conftest import put_log

GROUP, STREAM = "/knot/jobs", "knot/default/job-1"


def _failed_job() -> SubmittedJobInfo:
    spec = {"rule": "fit", "kind": "run", "jobid": 3, "log": {"items": [], "names": {}}}
    job = SimpleNamespace(jobid=3)
    return SubmittedJobInfo(job=job, external_jobid="job-1", aux={"spec": spec})  # type: ignore[arg-type]


def test_failure_message_shows_the_log_tail_with_escapes_as_text(
    clients, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    put_log(clients, GROUP, STREAM, ["\x1b]0;title\x07\x1b[2Jcleared", "Error:\tboom"])
    staging = LocalStaging(clients.s3, "knot-bucket", tmp_path)
    state = JobState("job-1", "FAILED", reason="Essential\x1b[31m exit", log_stream=STREAM)
    msg, saved = Outcomes(staging, clients.logs, GROUP).failure(_failed_job(), state)
    assert "\x1b" not in msg and "\x07" not in msg
    assert "\\x1b]0;title\\x07\\x1b[2Jcleared\nError:\tboom" in msg
    assert "failed: Essential\\x1b[31m exit (" in msg
    assert "\x1b" not in (tmp_path / saved[0]).read_text()
