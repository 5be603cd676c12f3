"""End to end, one short run per I/O mode: two jobs of one array on the emulated instance
read the same 9 MiB input through the instance's input cache (a compute class with
':cache=1GB'). One job downloads it, the other copies it from the cache, both check it
against its SHA-256 (each job's usage document says which did what), the two jobs ran
at the same time, and the outputs equal --executor local."""

from __future__ import annotations

import json
import os
import time

import boto3
import pytest

from .helpers import file_digests, outputs_of, snakemake, storage_args

pytestmark = pytest.mark.e2e

SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(2))

rule use:
    input: "ref.bin"
    output: "out/{i}.txt"
    shell: "sleep 4; sha256sum {input} | cut -d' ' -f1 > {output}"
"""
KNOT = (
    "--executor", "knot", "--knot-emulator", "--jobs", "2", "--latency-wait", "5",
    "--knot-compute-classes", "default=optimal:cache=1GB",
)  # fmt: skip
SIZE = 9 * 1024 * 1024  # above the 8 MiB from which inputs go through the cache


def _workdir(path, reference: bytes):
    path.mkdir()
    (path / "Snakefile").write_text(SNAKEFILE)
    (path / "ref.bin").write_bytes(reference)
    return path


def _usage_documents(since: float) -> list[dict]:
    """The usage documents of rule 'use' written since ``since``, from knot's bucket."""
    outputs = boto3.client("cloudformation").describe_stacks(StackName="knot")["Stacks"][0]
    bucket = next(o["OutputValue"] for o in outputs["Outputs"] if o["OutputKey"] == "BucketName")
    s3 = boto3.client("s3")
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="knot/usage/"):
        for obj in page.get("Contents", []):
            if "/use-" in obj["Key"] and obj["LastModified"].timestamp() >= since - 1:
                found.append(
                    json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                )
    return found


@pytest.mark.parametrize("mode", ["local", "storage"])
def test_two_jobs_at_once_share_one_verified_download(emulator_env, tmp_path, mode):
    reference = os.urandom(SIZE)  # new bytes: nothing in the instance's cache yet
    local_dir = _workdir(tmp_path / "local", reference)
    knot_dir = _workdir(tmp_path / "knot", reference)
    before = file_digests(local_dir)
    local = snakemake(local_dir, "--cores", "2")
    assert local.returncode == 0, local.stdout[-3000:]
    args = KNOT
    if mode == "storage":
        bucket = f"knot-e2e-cache-{os.getpid()}"
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="data/ref.bin", Body=reference)  # the user's data
        (knot_dir / "ref.bin").unlink()
        args = (*KNOT, *storage_args(emulator_env, bucket, "data"))
    since = time.time()
    run = snakemake(knot_dir, *args)
    assert run.returncode == 0, run.stdout[-6000:]
    if mode == "local":
        assert outputs_of(knot_dir, before) == outputs_of(local_dir, before)
    else:
        body = s3.get_object(Bucket=bucket, Key="data/out/0.txt")["Body"].read()
        assert body == (local_dir / "out" / "0.txt").read_bytes()

    docs = _usage_documents(since)
    assert len(docs) == 2, docs
    assert sorted((d["cache_misses"], d["cache_hits"]) for d in docs) == [(0, 1), (1, 0)]
    assert sum(d["cache_bytes_downloaded"] for d in docs) == SIZE
    assert all(d["cache_corrupt"] == 0 and d["cache_bypassed"] == 0 for d in docs)
    first, second = sorted(docs, key=lambda d: d["start"])
    assert second["start"] < first["end"], "the two jobs did not run at the same time"
