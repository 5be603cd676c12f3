"""Input identities against in-process moto: a storage object's ETag follows its bytes, a
folder's hash follows its keys and their ETags, and each distinct input is asked once."""

from __future__ import annotations

import hashlib
import os

import pytest

from snakemake_executor_knot.errors import KnotError
from snakemake_executor_knot.jobs.identity import (
    MISSING,
    object_identity,
    prefix_identity,
    set_identities,
    storage_identity,
)
from snakemake_executor_knot.jobs.staging import LocalStaging
from snakemake_executor_knot.runtime.contract import DIGEST_METADATA, WHOLE_CHECK_BYTES
from snakemake_executor_knot.runtime.spec import file_items

BUCKET = "study"


@pytest.fixture
def s3(clients):
    client = clients.s3
    client.create_bucket(Bucket=BUCKET)
    return client


def test_an_objects_identity_follows_its_bytes(s3):
    uri = f"s3://{BUCKET}/p/raw.txt"
    s3.put_object(Bucket=BUCKET, Key="p/raw.txt", Body=b"old")
    first = object_identity(s3, uri, "b")
    s3.put_object(Bucket=BUCKET, Key="p/raw.txt", Body=b"old")
    assert object_identity(s3, uri, "b") == first  # rewritten, same bytes
    s3.put_object(Bucket=BUCKET, Key="p/raw.txt", Body=b"new")
    assert object_identity(s3, uri, "b") != first
    assert first.startswith('etag:"')


def test_a_missing_object_has_the_missing_identity(s3):
    assert object_identity(s3, f"s3://{BUCKET}/p/none.txt", "b") == MISSING


def test_an_unreadable_bucket_is_an_error_naming_the_rule_and_input(s3):
    with pytest.raises(KnotError, match=r"input s3://no-such-bucket-here/raw\.txt for rule 'b'"):
        object_identity(s3, "s3://no-such-bucket-here/raw.txt", "b")


def test_a_folders_identity_follows_its_files(s3):
    item = {"path": "d", "uri": f"s3://{BUCKET}/p/d/", "directory": True}
    s3.put_object(Bucket=BUCKET, Key="p/d/a.txt", Body=b"a")
    first = storage_identity(s3, item, "b")
    assert first == prefix_identity(s3, item["uri"], "b")
    s3.put_object(Bucket=BUCKET, Key="p/dx.txt", Body=b"beside, not under, the prefix")
    assert storage_identity(s3, item, "b") == first
    s3.put_object(Bucket=BUCKET, Key="p/d/b.txt", Body=b"b")
    assert storage_identity(s3, item, "b") != first


def test_identities_are_asked_once_per_input_and_skip_group_made_files():
    shared = {"path": "raw.txt", "uri": "s3://b/raw.txt", "directory": False}
    made = {"path": "mid.txt", "uri": "s3://b/mid.txt", "directory": False, "from_group": True}
    single = {"input": {"items": [dict(shared)]}}
    group = {
        "kind": "group",
        "members": [{"input": {"items": [dict(shared)]}}, {"input": {"items": [made]}}],
    }
    asked = []

    def identity(item: dict) -> str:
        asked.append(item["path"])
        return "etag:1"

    set_identities([single, group], identity)
    assert asked == ["raw.txt"]
    assert single["input"]["items"][0]["identity"] == "etag:1"
    assert group["members"][0]["input"]["items"][0]["identity"] == "etag:1"
    assert "identity" not in made


def test_the_runtime_reads_items_that_carry_an_identity():
    item = {"path": "raw.txt", "uri": "s3://b/raw.txt", "directory": False, "identity": "x"}
    (read,) = file_items({"input": {"items": [item]}}, "input")
    assert read.path == "raw.txt" and read.uri == "s3://b/raw.txt"


def test_a_large_staged_files_identity_survives_another_upload_of_the_same_bytes(clients, tmp_path):
    """A job uploads its large output in parts, the host (after a crash, in a new run)
    uploads the same file whole: the ETags differ, the identity must not."""
    s3 = clients.s3
    s3.create_bucket(Bucket="knot-bucket")
    staging = LocalStaging(s3, "knot-bucket", tmp_path)
    data = os.urandom(WHOLE_CHECK_BYTES + 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    key = staging.key_for(str(path))
    metadata = {DIGEST_METADATA: hashlib.sha256(data).hexdigest()}
    upload = s3.create_multipart_upload(Bucket="knot-bucket", Key=key, Metadata=metadata)
    half = 5 * 1024 * 1024  # S3's smallest part but the last
    parts = [
        s3.upload_part(
            Bucket="knot-bucket", Key=key, UploadId=upload["UploadId"], PartNumber=n, Body=body
        )["ETag"]
        for n, body in ((1, data[:half]), (2, data[half:]))
    ]
    s3.complete_multipart_upload(
        Bucket="knot-bucket", Key=key, UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(parts, 1)]},
    )  # fmt: skip
    item = {"path": str(path), "uri": staging.uri_for(str(path)), "directory": False}
    by_job = staging.identity(item, "r")
    job_etag = s3.head_object(Bucket="knot-bucket", Key=key)["ETag"]

    again = LocalStaging(s3, "knot-bucket", tmp_path)  # a new run
    assert again.upload_inputs([str(path)], "r") == 1  # the job's object has no stamp
    assert s3.head_object(Bucket="knot-bucket", Key=key)["ETag"] != job_etag
    assert again.identity(item, "r") == by_job == f"sha256:{metadata[DIGEST_METADATA]}"


def test_a_small_staged_files_identity_is_its_etag(clients, tmp_path):
    s3 = clients.s3
    s3.create_bucket(Bucket="knot-bucket")
    staging = LocalStaging(s3, "knot-bucket", tmp_path)
    (tmp_path / "raw.txt").write_text("old")
    item = {"path": str(tmp_path / "raw.txt"), "uri": "", "directory": False}
    staging.upload_inputs([item["path"]], "r")
    etag = s3.head_object(Bucket="knot-bucket", Key=staging.key_for(item["path"]))["ETag"]
    assert staging.identity(item, "r") == f"etag:{etag}"
