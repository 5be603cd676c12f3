"""End to end: shapes of files beyond plain ones (tests/workflows/shapes) give the bytes
`--executor local` gives, in local-files mode and in storage mode:

- a file inside a checkpoint's directory() output is another rule's input;
- an empty folder is an input (local files only: S3 holds no empty folder), and an empty
  directory() output comes back holding only the .snakemake_timestamp that Snakemake
  touches into every directory() output;
- an output the rule makes with ``ln -s`` comes home as that link, and a linked input
  is read through its link;
- a pipe() is read while it is written: writer and reader run at once, in one container.
"""

from __future__ import annotations

import hashlib
import os

import boto3
import pytest

from .helpers import (
    KNOT,
    ROOT,
    copy_workflow,
    file_digests,
    latest_summary,
    outputs_of,
    snakemake,
    storage_args,
)

pytestmark = pytest.mark.e2e

WORKFLOW = ROOT / "tests" / "workflows" / "shapes"
BUCKET = "knot-e2e-shapes"
EMPTY_OUTPUTS = {"results/empty_seen.txt"}  # what only the empty folders make
PIPE_GROUP_RULES = "consume+produce"


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict[str, str]:
    workdir = copy_workflow(WORKFLOW, tmp_path_factory.mktemp("shapes") / "local")
    before = file_digests(workdir)
    done = snakemake(workdir, "--cores", "2")
    assert done.returncode == 0, done.stdout[-3000:]
    assert os.readlink(workdir / "results" / "link.txt") == "aggregated.txt"
    return outputs_of(workdir, before)


def test_shapes_in_local_files_mode(expected, emulator_env, tmp_path):
    workdir = copy_workflow(WORKFLOW, tmp_path / "knot")
    before = file_digests(workdir)
    done = snakemake(workdir, *KNOT)
    assert done.returncode == 0, done.stdout[-6000:]
    assert outputs_of(workdir, before) == expected
    results = workdir / "results"
    assert os.readlink(results / "link.txt") == "aggregated.txt"
    assert results.joinpath("empty_out").is_dir()
    # Only the marker Snakemake touches into every directory() output, as locally.
    assert [p.name for p in results.joinpath("empty_out").iterdir()] == [".snakemake_timestamp"]
    assert not results.joinpath("numbers.pipe").exists()
    _assert_pipe_ran_as_one_group(workdir)


def test_shapes_in_storage_mode(expected, emulator_env, tmp_path):
    workdir = copy_workflow(WORKFLOW, tmp_path / "knot")
    prefix = f"shapes-{os.getpid()}"
    args = storage_args(emulator_env, BUCKET, prefix)
    # The input in storage, as a user keeps it: the bytes the local link leads to.
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(workdir / "data" / "source.txt"), BUCKET, f"{prefix}/data/linked.txt")
    done = snakemake(workdir, *KNOT, *args, "--config", "empty_dirs=0")
    assert done.returncode == 0, done.stdout[-6000:]
    got = _bucket_outputs(f"{prefix}/")
    made = {k: v for k, v in expected.items() if k.startswith("results/")}
    # Every directory() output holds Snakemake's empty marker, the empty one only it.
    markers = {k: got.pop(k) for k in list(got) if k.endswith("/.snakemake_timestamp")}
    assert "results/empty_out/.snakemake_timestamp" in markers
    assert set(markers.values()) == {hashlib.sha256(b"").hexdigest()}
    assert got == {k: v for k, v in made.items() if k not in EMPTY_OUTPUTS}
    _assert_pipe_ran_as_one_group(workdir)


def _assert_pipe_ran_as_one_group(workdir) -> None:
    rules = [job["rule"] for job in latest_summary(workdir)["jobs"]]
    assert sum(r.endswith(f":{PIPE_GROUP_RULES}") for r in rules) == 1, rules


def _bucket_outputs(prefix: str) -> dict[str, str]:
    """sha256 of each workflow file under the prefix: knot's manifests and the input the
    test stored there left out."""
    s3 = boto3.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"][len(prefix) :]
            if key.endswith(".knot-manifest.json") or key.startswith("data/"):
                continue
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            found[key] = hashlib.sha256(body).hexdigest()
    return found
