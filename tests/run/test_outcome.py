"""A finished job on the host: its failure message and, in storage mode, a checkpoint's
directory brought home."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

from snakemake_executor_knot.aws.status import JobState
from snakemake_executor_knot.jobs.staging import LocalStaging
from snakemake_executor_knot.run import outcome
from snakemake_executor_knot.run.outcome import Outcomes
from snakemake_executor_knot.runtime import manifest
from snakemake_executor_knot.runtime.contract import MANIFEST_MAX_BYTES

from ..conftest import put_log

GROUP, STREAM = "/knot/jobs", "knot/default/job-1"


def _failed_job() -> SubmittedJobInfo:
    spec = {"rule": "fit", "kind": "run", "jobid": 3, "log": {"items": [], "names": {}}}
    job = SimpleNamespace(jobid=3)
    return SubmittedJobInfo(job=job, external_jobid="job-1", aux={"spec": spec})  # type: ignore[arg-type]


def test_failure_message_shows_the_log_tail_with_escapes_as_text(clients, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    put_log(clients, GROUP, STREAM, ["\x1b]0;title\x07\x1b[2Jcleared", "Error:\tboom"])
    staging = LocalStaging(clients.s3, "knot-bucket", tmp_path)
    state = JobState("job-1", "FAILED", reason="Essential\x1b[31m exit", log_stream=STREAM)
    msg, saved = Outcomes(staging, clients.logs, GROUP).failure(_failed_job(), state)
    assert "\x1b" not in msg and "\x07" not in msg
    assert "\\x1b]0;title\\x07\\x1b[2Jcleared\nError:\tboom" in msg
    assert "failed: Essential\\x1b[31m exit (" in msg
    assert "\x1b" not in (tmp_path / saved[0]).read_text()


# ------------------------------------------------- a storage-mode checkpoint brought home

USER_BUCKET = "my-study"


class StorageDirectory(str):
    """A storage-mode directory() output: its local path and its S3 storage object."""

    is_directory = is_storage = True

    def __new__(cls, path: str, query: str):
        made = super().__new__(cls, path)
        made.storage_object = SimpleNamespace(query=query, _is_dir=False)
        return made

    async def retrieve_from_storage(self):  # the plugin's copy of every key: never wanted
        raise AssertionError("a directory must follow its manifest, not the whole prefix")


def _checkpoint(output: list) -> SubmittedJobInfo:
    job = SimpleNamespace(is_checkpoint=True, output=output, rule=SimpleNamespace(name="pick"))
    return SubmittedJobInfo(job=job, external_jobid="job-7", aux={})  # type: ignore[arg-type]


def _put_tree(s3, prefix: str, files: dict[str, bytes], manifest_body: bytes | None) -> None:
    s3.create_bucket(Bucket=USER_BUCKET)
    for name, data in files.items():
        s3.put_object(Bucket=USER_BUCKET, Key=prefix + name, Body=data)
    if manifest_body is not None:
        key = manifest.manifest_key(prefix)
        s3.put_object(Bucket=USER_BUCKET, Key=key, Body=manifest_body)


def test_checkpoint_directory_comes_home_as_its_manifest_lists(clients, tmp_path, monkeypatch):
    """A Batch retry's first attempt left a file under the prefix; the host's local copy,
    which glob_wildcards reads, holds only the files of the attempt that succeeded (and
    none of an earlier retrieval)."""
    monkeypatch.chdir(tmp_path)
    local = Path(".snakemake/storage/s3/my-study/p/picked")
    (tmp_path / local).mkdir(parents=True)
    (tmp_path / local / "from-last-run.txt").write_text("old")
    entry = manifest.Entry("b.txt", 1, hashlib.sha256(b"b").hexdigest())
    files = {"a-attempt-1.txt": b"a", "b.txt": b"b"}
    _put_tree(clients.s3, "p/picked/", files, manifest.encode([entry]))
    tree = StorageDirectory(str(local), f"s3://{USER_BUCKET}/p/picked")
    staging = LocalStaging(clients.s3, "knot-bucket", tmp_path)
    problem = asyncio.run(
        Outcomes(staging, clients.logs, GROUP).retrieve_checkpoint(_checkpoint([tree]))
    )
    assert problem is None
    assert sorted(p.name for p in (tmp_path / local).iterdir()) == ["b.txt"]
    assert tree.storage_object._is_dir is None  # the plugin lists the prefix again


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b" " * (MANIFEST_MAX_BYTES + 1), "larger than 67,108,864 bytes"),
        (None, "has no manifest"),
    ],
    ids=["deep", "huge", "missing"],
)
def test_bad_checkpoint_manifest_fails_the_job_naming_it(
    clients, tmp_path, monkeypatch, body, says
):
    monkeypatch.chdir(tmp_path)
    _put_tree(clients.s3, "p/picked/", {"b.txt": b"b"}, body)
    tree = StorageDirectory("picked", f"s3://{USER_BUCKET}/p/picked")
    staging = LocalStaging(clients.s3, "knot-bucket", tmp_path)
    problem = asyncio.run(
        Outcomes(staging, clients.logs, GROUP).retrieve_checkpoint(_checkpoint([tree]))
    )
    assert problem is not None and says in problem
    assert problem.startswith("AWS Batch job job-7: Rule 'pick': ")
    assert not (tmp_path / "picked" / "b.txt").exists()


def test_a_failed_jobs_whole_log_is_saved_and_the_message_shows_its_end(
    clients, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    lines = [f"step {i}" for i in range(200)]
    put_log(clients, GROUP, STREAM, lines)
    staging = LocalStaging(clients.s3, "knot-bucket", tmp_path)
    state = JobState("job-1", "FAILED", reason="Essential container exited", log_stream=STREAM)
    msg, saved = Outcomes(staging, clients.logs, GROUP).failure(_failed_job(), state)
    assert (tmp_path / saved[0]).read_text().splitlines() == lines
    assert "\nstep 170\n" in msg and "step 169\n" not in msg
    assert msg.endswith(f"Its whole log (up to 8 MiB): {saved[0]}")


def test_a_log_over_the_cap_keeps_its_end_and_says_so(clients, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(outcome, "MAX_SAVED_LOG_BYTES", 2 * 1024 * 1024)
    big = "x" * 1000
    put_log(clients, GROUP, STREAM, [f"{i:04d}{big}" for i in range(3000)])
    staging = LocalStaging(clients.s3, "knot-bucket", tmp_path)
    state = JobState("job-1", "FAILED", log_stream=STREAM)
    _, saved = Outcomes(staging, clients.logs, GROUP).failure(_failed_job(), state)
    text = (tmp_path / saved[0]).read_text()
    first, *rest = text.splitlines()
    assert (
        first == "[knot: this log was longer than 2 MiB; its beginning is left out, its end kept]"
    )
    assert rest[-1].startswith("2999") and len(text.encode()) <= 2 * 1024 * 1024 + 200
    assert not rest[0].startswith("0000")
