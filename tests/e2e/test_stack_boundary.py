"""End to end on the emulator: the stack lease's conditional writes hold on the emulator's
S3 (one winner among racing writers), and jobs run as uid 1000 whatever their image's
USER, as their job definition says."""

from __future__ import annotations

import io
import threading

import docker
import pytest
from botocore.exceptions import ClientError

from snakemake_executor_knot.aws.lease import LEASE_KEY, LeaseTiming, StackLease
from snakemake_executor_knot.errors import AwsError

from .fixtures import boto_client
from .helpers import snakemake

pytestmark = pytest.mark.e2e

KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "2", "--latency-wait", "5")


def _racing_creates(s3, bucket: str, writers: int = 4) -> list[int]:
    """``writers`` threads PUT the lease with If-None-Match: * at once; the winners."""
    winners: list[int] = []
    start = threading.Barrier(writers)

    def write(index: int) -> None:
        start.wait()
        try:
            s3.put_object(Bucket=bucket, Key=LEASE_KEY, Body=b"x", IfNoneMatch="*")
            winners.append(index)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] in {"PreconditionFailed", "409"}

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return winners


def test_conditional_writes_have_one_winner_on_the_emulator(emulator):
    s3 = boto_client(emulator, "s3")
    bucket = "knot-lease-e2e"
    s3.create_bucket(Bucket=bucket)
    for round_ in range(10):
        assert len(_racing_creates(s3, bucket)) == 1, round_
        s3.delete_object(Bucket=bucket, Key=LEASE_KEY)
    timing = LeaseTiming(ttl=60.0, renew=0.1, poll=0.05, timeout=1.0)
    waiter = StackLease(s3, bucket, "e2e-b", timing)
    with StackLease(s3, bucket, "e2e-a", timing), pytest.raises(AwsError, match="by e2e-a"):
        waiter.acquire()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


SNAKEFILE = """
rule whoami:
    output: "uid.txt"
    shell: "id -u > {output}"

rule as_root:
    output: "root-uid.txt"
    resources: knot_image=config.get("image", "")
    shell: "id -u > {output}; touch /usr/local/root-only 2>/dev/null || echo denied >> {output}"
"""
ROOT_IMAGE = "knot-e2e-root-user:1"


def test_jobs_run_as_uid_1000_even_in_an_image_whose_user_is_root(emulator_env, emulator, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    run = snakemake(tmp_path, *KNOT, "uid.txt")
    assert run.returncode == 0, run.stdout[-6000:]
    assert (tmp_path / "uid.txt").read_text() == "1000\n"
    batch = boto_client(emulator, "batch")
    definitions = batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    knots = [d for d in definitions if d["jobDefinitionName"].startswith("knot-")]
    assert knots
    assert all(d["containerProperties"]["user"] == "1000" for d in knots)
    assert all(d["containerProperties"]["privileged"] is False for d in knots)
    # An image built FROM knot's that switches to root (a knot_image): the job still runs
    # as 1000, and what only root may do is denied.
    built = knots[0]["containerProperties"]["image"]
    dockerfile = f"FROM {built}\nUSER root\n".encode()
    docker.from_env().images.build(fileobj=io.BytesIO(dockerfile), tag=ROOT_IMAGE)
    run = snakemake(tmp_path, *KNOT, "root-uid.txt", "--config", f"image={ROOT_IMAGE}")
    assert run.returncode == 0, run.stdout[-6000:]
    assert (tmp_path / "root-uid.txt").read_text() == "1000\ndenied\n"
