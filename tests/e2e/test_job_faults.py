"""End to end under job faults (`knot emulator faults --kill/--reclaim`) and two runs at once:

- a spot reclaim ends an attempt with Batch's "Host EC2 (instance i-...) terminated.", and
  knot's job definition has Batch retry it once, under the same job id;
- a container killed mid-run fails its job (not retried), Snakemake's output names the rule
  and the kill, and a re-run runs only what is missing;
- a storage-mode directory() output whose first attempt, reclaimed, left a file under its
  prefix: the job reading the directory, and the directory's manifest, see only the files of
  the attempt that succeeded;
- two workflows with different storage buckets run at once on one emulator: both match a
  local run, and the shared job role ends up with both buckets.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from .fixtures import boto_client
from .helpers import (
    file_digests,
    latest_summary,
    outputs_of,
    snakemake,
    start_snakemake,
)

pytestmark = pytest.mark.e2e

KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "8", "--latency-wait", "5")
RECLAIMED = re.compile(r"Host EC2 \(instance i-[0-9a-f]{17}\) terminated\.")

# The rule the tests share (one image): a job that runs long enough to be struck.
WORK = """
rule work:
    output: "out/{name}.txt"
    shell: "sleep 6 && echo {wildcards.name} > {output}"
"""
# Three independent jobs, one name each so that a fault can pick it (single jobs carry
# their wildcards in the Batch job name), and one that needs all three. `all` comes first:
# Snakemake's default target is the first rule.
STRUCK = f"""
NAMES = ["steady", "spot", "doomed"]

rule all:
    input: "out/total.txt"
{WORK}
rule total:
    input: expand("out/{{name}}.txt", name=NAMES)
    output: "out/total.txt"
    shell: "cat {{input}} > {{output}}"
"""


def _jobs_since(emulator, since_ms: int) -> dict[str, dict]:
    """Batch job name -> description, for every job created after ``since_ms``."""
    batch = boto_client(emulator, "batch")
    ids = []
    for queue in batch.describe_job_queues()["jobQueues"]:
        pages = batch.get_paginator("list_jobs").paginate(
            jobQueue=queue["jobQueueArn"],
            filters=[{"name": "AFTER_CREATED_AT", "values": [str(since_ms)]}],
        )
        # moto ignores the filter, so the time is checked here too.
        ids += [
            s["jobId"] for p in pages for s in p["jobSummaryList"] if s["createdAt"] >= since_ms
        ]
    described = [j for i in range(0, len(ids), 100) for j in _describe(batch, ids[i : i + 100])]
    names = [j["jobName"] for j in described]
    assert len(names) == len(set(names)), f"a job ran twice: {sorted(names)}"
    return {j["jobName"]: j for j in described}


def _describe(batch, ids: list[str]) -> list[dict]:
    return batch.describe_jobs(jobs=ids)["jobs"] if ids else []


def _one(jobs: dict[str, dict], prefix: str) -> dict:
    [found] = [job for name, job in jobs.items() if name.startswith(prefix)]
    return found


def test_reclaim_is_retried_once_and_a_killed_job_fails_clearly(emulator, faults, tmp_path):
    (tmp_path / "Snakefile").write_text(STRUCK)
    single = (*KNOT, "--knot-single-jobs")
    # Faults strike job containers only, so images and stack may be made in the same run.
    faults("--reclaim", "work-spot-*", "--kill", "work-doomed-*", "--after", "3")
    since = int(time.time() * 1000)
    failed = snakemake(tmp_path, *single)

    assert failed.returncode != 0, failed.stdout[-4000:]
    out = failed.stdout
    assert "Error in rule work" in out and "exit code 137: the container was killed" in out, out
    assert faults()["injected"] == {"job.kill": 1, "job.reclaim": 1}
    jobs = _jobs_since(emulator, since)
    spot, doomed, steady = (_one(jobs, f"work-{n}-") for n in ("spot", "doomed", "steady"))
    # The reclaim: one more attempt of the same job, which then succeeded.
    assert spot["status"] == "SUCCEEDED" and len(spot["attempts"]) == 2, spot
    assert RECLAIMED.fullmatch(spot["attempts"][0]["statusReason"]), spot["attempts"]
    assert "exitCode" not in spot["attempts"][0]["container"]
    # The kill: a failure of the job itself, not retried although attempts were left.
    assert doomed["status"] == "FAILED" and len(doomed["attempts"]) == 1, doomed
    assert doomed["container"]["exitCode"] == 137
    assert steady["status"] == "SUCCEEDED" and len(steady["attempts"]) == 1
    assert not any(name.startswith("total-") for name in jobs)
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"steady.txt", "spot.txt"}

    faults("--clear")
    since = int(time.time() * 1000)
    rerun = snakemake(tmp_path, *single)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    again = _jobs_since(emulator, since)
    assert sorted(name.split("-j")[0] for name in again) == ["total", "work-doomed"]
    assert latest_summary(tmp_path)["calls"]["batch.SubmitJob"] == 2
    assert (tmp_path / "out" / "total.txt").read_text() == "steady\nspot\ndoomed\n"


# Attempt 1 puts an object under its own output's prefix, as an upload a reclaim cut short
# would leave, and waits to be reclaimed; attempt 2 (a new container) finds it there and
# makes the directory. A job then lists the directory.
RECLAIMED_TREE = """
import os

rule all:
    input: "listing.txt"

rule tree:
    output: directory("tree")
    params: stray=config["stray"]
    run:
        import time
        import boto3
        bucket, key = params.stray.split("/", 1)
        s3 = boto3.client("s3")
        if not s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"left by attempt 1")
            time.sleep(120)
        os.makedirs(output[0])
        for name in ("a", "b"):
            with open(os.path.join(output[0], name + ".txt"), "w") as handle:
                handle.write(name)

rule listing:
    input: "tree"
    output: "listing.txt"
    shell: "ls {input} > {output}"
"""


def test_reclaimed_attempts_files_never_reach_the_directorys_readers(
    emulator, emulator_env, faults, tmp_path
):
    bucket = f"knot-e2e-tree-{uuid.uuid4().hex[:8]}"
    stray = f"{bucket}/w/tree/stray-from-attempt-1.txt"
    (tmp_path / "Snakefile").write_text(RECLAIMED_TREE)
    faults("--reclaim", "tree-*", "--after", "12")
    since = int(time.time() * 1000)
    done = snakemake(tmp_path, *_storage(bucket, emulator_env), "--config", f"stray={stray}")

    assert done.returncode == 0, done.stdout[-4000:]
    assert faults()["injected"] == {"job.reclaim": 1}
    tree = _one(_jobs_since(emulator, since), "tree-")
    assert len(tree["attempts"]) == 2 and RECLAIMED.fullmatch(
        tree["attempts"][0]["statusReason"]
    ), tree["attempts"]
    s3 = boto_client(emulator, "s3")
    read = lambda key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # noqa: E731
    assert read("w/tree/stray-from-attempt-1.txt") == b"left by attempt 1"  # still there
    assert read("w/listing.txt") == b"a.txt\nb.txt\n"
    listed = json.loads(read("w/tree.knot-manifest.json"))["files"]
    assert sorted(entry["name"] for entry in listed) == [".snakemake_timestamp", "a.txt", "b.txt"]


def _workflow(word: str) -> str:
    # The same rule as above (its image is reused), a different workflow around it.
    return f'rule all:\n    input: "out/{word}.txt"\n' + WORK


def test_two_runs_with_different_buckets_at_once_both_succeed(emulator, emulator_env, tmp_path):
    tag = uuid.uuid4().hex[:8]
    buckets = {word: f"knot-e2e-{word}-{tag}" for word in ("left", "right")}
    for word in buckets:
        for copy in (word, f"{word}-local"):
            (tmp_path / copy).mkdir()
            (tmp_path / copy / "Snakefile").write_text(_workflow(word))
    before = {word: file_digests(tmp_path / f"{word}-local") for word in buckets}
    # The local runs (the reference) go alongside the two knot runs, to save time.
    procs = {}
    for word, bucket in buckets.items():
        procs[word] = start_snakemake(tmp_path / word, *_storage(bucket, emulator_env))
        procs[f"{word}-local"] = start_snakemake(tmp_path / f"{word}-local", "--cores", "1")
    outputs = {name: proc.communicate(timeout=900)[0] for name, proc in procs.items()}

    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}: {outputs[name][-4000:]}"
    for word, bucket in buckets.items():
        local = outputs_of(tmp_path / f"{word}-local", before[word])
        assert local and _stored(emulator, bucket) == local
        # Each run settled the shared stack in a round or two, never looping on updates.
        calls = latest_summary(tmp_path / word)["calls"]
        assert calls.get("cloudformation.UpdateStack", 0) <= 2, calls
    policy = _job_role_policy(emulator)
    for bucket in buckets.values():
        assert f"arn:aws:s3:::{bucket}/*" in policy


def _storage(bucket: str, env: dict) -> tuple[str, ...]:
    return (
        *KNOT,
        "--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{bucket}/w",
        "--storage-s3-endpoint-url", env["AWS_ENDPOINT_URL"],
        "--storage-s3-access-key", "testing", "--storage-s3-secret-key", "testing",
        "--storage-s3-region", "us-east-1",
    )  # fmt: skip


def _stored(emulator, bucket: str) -> dict[str, str]:
    """sha256 of each object under the run's prefix, by its path in the workflow."""
    import hashlib

    s3 = boto_client(emulator, "s3")
    found = {}
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="w/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        found[obj["Key"][2:]] = hashlib.sha256(body).hexdigest()
    return found


def _job_role_policy(emulator) -> str:
    """Every inline policy of the stack's job role, as one JSON text."""
    stack = boto_client(emulator, "cloudformation").describe_stacks(StackName="knot")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    role = outputs["JobRoleArn"].rpartition("/")[2]
    iam = boto_client(emulator, "iam")
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    return json.dumps([iam.get_role_policy(RoleName=role, PolicyName=n) for n in names])
