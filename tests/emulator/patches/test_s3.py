"""The S3 patches: a bucket policy checked without its conditions, and ranged reads with
the same bytes and errors as moto, without whole copies."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from snakemake_executor_knot.emulator.patches import s3 as s3_patches
from snakemake_executor_knot.emulator.patches.s3 import (
    KeyWindow,
    patch_ranged_reads,
    unconditional_policy,
)

BODY = os.urandom(3 * 1024 * 1024 + 17)


def test_unconditional_policy_drops_conditional_statements():
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "*"},
        ],
    }
    kept = json.loads(unconditional_policy(json.dumps(policy)))["Statement"]
    assert kept == [policy["Statement"][1]]


@pytest.fixture(scope="module")
def s3():
    patch_ranged_reads()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="ranged")
    client.put_object(Bucket="ranged", Key="big", Body=BODY)
    yield client
    server.stop()


@pytest.fixture
def windows(monkeypatch):
    """Counts the slices read through the window."""
    sliced = []
    original = KeyWindow.__getitem__

    def getitem(window, part):
        sliced.append(part)
        return original(window, part)

    monkeypatch.setattr(KeyWindow, "__getitem__", getitem)
    return sliced


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", BODY[:100]),
        ("bytes=1048576-2097151", BODY[1048576:2097152]),
        ("bytes=3145700-", BODY[3145700:]),
        ("bytes=-50", BODY[-50:]),
        ("bytes=100-999999999", BODY[100:]),
    ],
    ids=["start", "middle", "open", "suffix", "past-the-end"],
)
def test_ranged_get_reads_only_the_window(s3, windows, header, expected):
    got = s3.get_object(Bucket="ranged", Key="big", Range=header)
    assert got["Body"].read() == expected
    assert got["ContentRange"].endswith(f"/{len(BODY)}")
    assert len(windows) == 1


def test_range_past_the_end_is_still_invalid(s3):
    with pytest.raises(ClientError, match="InvalidRange"):
        s3.get_object(Bucket="ranged", Key="big", Range=f"bytes={len(BODY)}-")


def test_plain_get_and_multipart_download_are_unchanged(s3, tmp_path, windows):
    assert s3.get_object(Bucket="ranged", Key="big")["Body"].read() == BODY
    assert windows == []
    config = boto3.s3.transfer.TransferConfig(
        multipart_threshold=1024 * 1024, multipart_chunksize=1024 * 1024
    )
    s3.download_file("ranged", "big", str(tmp_path / "big"), Config=config)
    assert (tmp_path / "big").read_bytes() == BODY
    assert len(windows) == 4  # one per part


def test_the_patch_is_applied_once():
    patched = (s3_patches.FakeKey.value, s3_patches.S3Response.key_response)
    patch_ranged_reads()
    assert (s3_patches.FakeKey.value, s3_patches.S3Response.key_response) == patched
