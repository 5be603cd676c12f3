"""End to end: Snakemake's shared test base for executor plugins (snakemake.common.tests),
its simple and group workflows, run in-process through Snakemake's API under knot on the
session's emulator: once with local files (knot carries them through its own bucket) and
once in storage mode (default storage provider s3, a prefix in a bucket on the emulator).
The base checks that each workflow runs to its end; here also its outputs, and that its
jobs ran as Batch jobs."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from snakemake.common.tests import TestWorkflowsLocalStorageBase, TestWorkflowsMinioPlayStorageBase

from snakemake_executor_knot.config.settings import ExecutorSettings

from .fixtures import DUMMY_CREDENTIALS
from .helpers import latest_summary

pytestmark = pytest.mark.e2e

# What the base's workflows leave behind, by workflow: file name and contents.
EXPECTED = {
    "simple": {
        "test1.out": b"",
        "test2.out": b"",
        "test3.out": b"",
        "res/somedir1.out": b"",
        "res/somedir2/subdir.out": b"",
        "a.log": b"",
        "b.log": b"",
        "c.log": b"",
    },
    "groups": {
        **{f"test{step}.{sample}.out": b"" for step in (1, 2) for sample in (1, 2, 3)},
        "test3.out": b"",
    },
}
# The Batch jobs each workflow runs (rule all runs on the host), by knot's rule label.
BATCH_JOBS = {
    "simple": ["a", "b", "c", "d", "d"],
    "groups": ["c", *["group:foo:a+b"] * 3],  # one Batch job per group job (sample)
}
# The storage mode's bucket. One fixed name shared with tests/e2e/test_workflows.py: the
# job role is granted every storage bucket, so a new name per test would update the stack.
STORAGE_BUCKET = "knot-e2e"


class KnotBase:
    """What both modes share: knot on the session's emulator."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _on_emulator(self, emulator_env):
        """The session emulator's environment (endpoint, region, dummy credentials)."""
        self.env = emulator_env

    def get_executor(self) -> str:
        return "knot"

    def get_executor_settings(self) -> ExecutorSettings:
        return ExecutorSettings(emulator=True)

    # get_assume_shared_fs stays the base's True: knot's common settings say
    # implies_no_shared_fs, so Snakemake itself runs it with no shared filesystem.

    def run_workflow(self, test_name, tmp_path, deployment_method=frozenset()):
        super().run_workflow(test_name, tmp_path, deployment_method)
        workdir = Path(tmp_path) / test_name
        assert self.outputs(test_name, workdir) == EXPECTED[test_name]
        jobs = latest_summary(workdir)["jobs"]
        assert sorted(job["rule"] for job in jobs) == BATCH_JOBS[test_name]
        assert {job["status"] for job in jobs} == {"SUCCEEDED"}

    def outputs(self, test_name: str, workdir: Path) -> dict[str, bytes]:
        raise NotImplementedError


class TestKnotLocalFiles(KnotBase, TestWorkflowsLocalStorageBase):
    """No storage provider: knot stages inputs and outputs through its own bucket."""

    def outputs(self, test_name, workdir):
        return {name: (workdir / name).read_bytes() for name in EXPECTED[test_name]}


class TestKnotS3Storage(KnotBase, TestWorkflowsMinioPlayStorageBase):
    """Storage mode: jobs read and write s3://knot-e2e/base-<random>/ on the emulator."""

    @property
    def bucket(self) -> str:
        # The base puts the default storage prefix at s3://<bucket>; a random prefix inside
        # the shared bucket keeps each test's files apart.
        if not hasattr(self, "_prefix"):
            self._prefix = f"base-{uuid.uuid4().hex[:12]}"
        return f"{STORAGE_BUCKET}/{self._prefix}"

    @property
    def endpoint_url(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]

    @property
    def access_key(self) -> str:
        return DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]

    @property
    def secret_key(self) -> str:
        return DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]

    def outputs(self, test_name, workdir):
        # Nothing travels through the host in storage mode: the outputs are in the bucket.
        assert not (workdir / "test3.out").exists()
        s3 = boto3.client("s3")
        return {
            name: s3.get_object(Bucket=STORAGE_BUCKET, Key=f"{self._prefix}/{name}")["Body"].read()
            for name in EXPECTED[test_name]
        }

    def cleanup_test(self):
        """Remove this test's prefix, not the bucket other tests share."""
        if not hasattr(self, "_prefix"):
            return
        s3 = boto3.client("s3")
        if STORAGE_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            return
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=STORAGE_BUCKET, Prefix=f"{self._prefix}/"
        )
        for page in pages:
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=STORAGE_BUCKET, Delete={"Objects": keys})
