"""End to end: grouped rules (tests/workflows/groups) run as one Batch job per group on
the emulator, with outputs equal to --executor local, in local-files mode and in storage
mode; the group's temp() intermediate never reaches S3. Two runs cover four cases:

- local-files mode, with --keep-going and a third sample whose group fails in its first
  member: the error names that rule inside the group and shows its log tail;
- storage mode with --group-components prep=2: both samples' groups in ONE Batch job.
"""

from __future__ import annotations

import boto3
import pytest

from .helpers import (
    ROOT,
    bucket_digests,
    copy_workflow,
    file_digests,
    knot_report_rows,
    latest_summary,
    outputs_of,
    snakemake,
)

pytestmark = pytest.mark.e2e

WORKFLOW = ROOT / "tests" / "workflows" / "groups"
KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "4", "--latency-wait", "5")
GROUP = "group:prep:count+report+upper"
TEMP_NAME = "grouptemp"  # part of the temp() file's name, and of no other file's


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict[str, str]:
    """The outputs of --executor local (the failing sample makes nothing there either)."""
    local_dir = copy_workflow(WORKFLOW, tmp_path_factory.mktemp("local") / "wf")
    before = file_digests(local_dir)
    run = snakemake(local_dir, "--cores", "2", "--keep-going", "--config", "fail=c")
    assert run.returncode != 0 and "sample c was asked to fail" in run.stdout, run.stdout[-3000:]
    found = outputs_of(local_dir, before)
    assert sorted(found) == [
        "results/a.count.txt", "results/a.report.txt",
        "results/b.count.txt", "results/b.report.txt",
    ]  # fmt: skip
    return found


def test_groups_in_local_mode_with_a_failing_member(expected, emulator_env, tmp_path):
    workdir = copy_workflow(WORKFLOW, tmp_path / "knot")
    before = file_digests(workdir)
    run = snakemake(workdir, *KNOT, "--keep-going", "--config", "fail=c")
    assert run.returncode != 0, run.stdout[-6000:]
    assert outputs_of(workdir, before) == expected
    # The failure names the member rule, its group and the error from the log tail.
    assert "of rule 'upper' in group 'prep' (rules count, report, upper) failed" in run.stdout
    assert "ValueError: sample c was asked to fail" in run.stdout
    # One Batch job per group job (three samples).
    groups = latest_summary(workdir)["jobs"]
    assert [j["rule"] for j in groups] == [GROUP] * 3
    assert len({j["batch_id"] for j in groups}) == 3
    assert sorted(j["status"] for j in groups) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    done = [j for j in groups if j["status"] == "SUCCEEDED"]
    assert all(j["usage"]["run_s"] > 0 and j["usage"]["stage_out_bytes"] > 0 for j in done)
    assert all([m["rule"] for m in j["usage"]["members"]] == ["upper", "count", "report"]
               for j in done)  # fmt: skip
    assert _keys_with(TEMP_NAME) == []


def test_group_components_in_storage_mode(expected, emulator_env, tmp_path):
    bucket, prefix = "knot-e2e-groups", "run/"
    storage = (
        "--default-storage-provider", "s3",
        "--default-storage-prefix", f"s3://{bucket}/run",
        "--storage-s3-endpoint-url", emulator_env["AWS_ENDPOINT_URL"],
        "--storage-s3-access-key", "testing", "--storage-s3-secret-key", "testing",
        "--storage-s3-region", "us-east-1",
    )  # fmt: skip
    workdir = copy_workflow(WORKFLOW, tmp_path / "knot")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    for sample in ("a", "b"):  # the workflow's input data, in storage as a user keeps it
        name = f"data/{sample}.txt"
        s3.upload_file(str(workdir / name), bucket, prefix + name)
    run = snakemake(workdir, *KNOT, *storage, "--group-components", "prep=2")
    assert run.returncode == 0, run.stdout[-6000:]
    stored = bucket_digests(bucket, prefix + "results/")
    assert {f"results/{k}": v for k, v in stored.items()} == expected
    assert not (workdir / "results").exists()  # nothing travelled through the host
    # Both samples' groups (two components, six members) ran as one Batch job.
    (group,) = latest_summary(workdir)["jobs"]
    assert group["rule"] == GROUP
    assert len(group["usage"]["members"]) == 6
    assert GROUP in [row["rule"] for row in knot_report_rows(workdir)]
    assert _keys_with(TEMP_NAME) == []


def _keys_with(part: str) -> list[str]:
    """Every key in any bucket of the emulator whose name holds ``part``."""
    s3 = boto3.client("s3")
    found = []
    for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found += [o["Key"] for o in page.get("Contents", []) if part in o["Key"]]
    return found
