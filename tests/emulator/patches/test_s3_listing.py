"""The sorted key index: every listing is what moto's own scan returns (keys, folders,
markers, continuation tokens, delete markers, hostile names), over real HTTP, and the
index follows puts and deletes."""

from __future__ import annotations

import boto3
import pytest
from moto.s3.models import S3Backend
from moto.server import ThreadedMotoServer

from snakemake_executor_knot.emulator.patches import s3 as s3_patches

HOSTILE = [
    "a", "a/", "a/b", "a/b/c", "a/b/c/d.txt", "a//d", "a/b.txt", "ab", "a b", "a%2Fb",
    "a+b", "a\u00e9", "a\U0001f600/x", "\u00ff", "z/../a", "a/./b", "-", "~", "A",
    "a/b/c2", "a/bb/c", "dup", "versioned/x", "versioned/y", "gone/1",
]  # fmt: skip
PREFIXES = [None, "", "a", "a/", "a/b", "a/b/", "a\u00e9", "a\U0001f600", "b", "~~", "z"]
DELIMITERS = [None, "/", "b", "\u00e9"]


@pytest.fixture(scope="module")
def s3():
    s3_patches.patch_sorted_listing()
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
    client.create_bucket(Bucket="listed")
    client.put_bucket_versioning(Bucket="listed", VersioningConfiguration={"Status": "Enabled"})
    for key in HOSTILE:
        client.put_object(Bucket="listed", Key=key, Body=key.encode())
    client.put_object(Bucket="listed", Key="dup", Body=b"second version")
    client.delete_object(Bucket="listed", Key="versioned/y")  # a delete marker is latest
    yield client
    server.stop()


def _pages(s3, v2: bool, **kwargs) -> list[dict]:
    """Every page of a listing, without the per-request metadata."""
    name = "list_objects_v2" if v2 else "list_objects"
    pages = s3.get_paginator(name).paginate(Bucket="listed", **kwargs)
    return [{k: v for k, v in page.items() if k != "ResponseMetadata"} for page in pages]


def _both(s3, monkeypatch, v2: bool, **kwargs) -> tuple[list[dict], list[dict]]:
    indexed = _pages(s3, v2, **kwargs)
    with monkeypatch.context() as scan:
        scan.setattr(S3Backend, "list_objects", S3Backend._knot_scan_listing)
        scanned = _pages(s3, v2, **kwargs)
    return indexed, scanned


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("delimiter", DELIMITERS)
@pytest.mark.parametrize("page", [None, 2])
def test_listing_equals_moto_scan(s3, monkeypatch, v2, prefix, delimiter, page):
    kwargs: dict = {}
    if prefix is not None:
        kwargs["Prefix"] = prefix
    if delimiter is not None:
        kwargs["Delimiter"] = delimiter
    if page is not None:
        kwargs["PaginationConfig"] = {"PageSize": page}
    indexed, scanned = _both(s3, monkeypatch, v2, **kwargs)
    assert indexed == scanned
    assert indexed  # at least one page came back


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("after", ["a/b", "a", "", "\u00ff", "zz"])
def test_markers_and_start_after_equal_moto(s3, monkeypatch, v2, after):
    kwargs = {"StartAfter": after} if v2 else {"Marker": after}
    indexed, scanned = _both(s3, monkeypatch, v2, Prefix="a", **kwargs)
    assert indexed == scanned


def test_continuation_tokens_page_through_every_key(s3):
    pages = _pages(s3, True, Prefix="a/", PaginationConfig={"PageSize": 2})
    keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    assert len(pages) > 2
    assert keys == sorted(k for k in HOSTILE if k.startswith("a/"))


def test_delete_marker_hides_key_and_index_follows_changes(s3):
    listed = _pages(s3, True, Prefix="versioned/")
    assert [o["Key"] for o in listed[0]["Contents"]] == ["versioned/x"]
    s3.put_object(Bucket="listed", Key="gone/2", Body=b"x")
    assert [o["Key"] for o in _pages(s3, True, Prefix="gone/")[0]["Contents"]] == [
        "gone/1",
        "gone/2",
    ]


def test_index_rebuilds_after_a_change_past_the_hooks():
    s3_patches.patch_sorted_listing()
    store = s3_patches._VersionedKeyStore()
    store["b"] = 1
    store["a"] = 2
    assert s3_patches.names_under(store, "") == ["a", "b"]
    store["c"] = 3  # through the hook: kept in order
    del store["a"]
    assert s3_patches.names_under(store, "") == ["b", "c"]
    dict.__setitem__(store, "bb", [4])  # past the hooks: the length tells
    assert s3_patches.names_under(store, "b") == ["b", "bb"]


def test_the_patch_is_applied_once():
    s3_patches.patch_sorted_listing()
    listing = S3Backend.list_objects
    s3_patches.patch_sorted_listing()
    assert S3Backend.list_objects is listing


def test_a_prefix_listing_never_scans_the_bucket(s3, monkeypatch):
    def scan(self):
        raise AssertionError("the listing scanned every key of the bucket")

    monkeypatch.setattr(s3_patches._VersionedKeyStore, "items", scan)
    visited = []
    names_under = s3_patches.names_under
    monkeypatch.setattr(
        s3_patches,
        "names_under",
        lambda store, prefix: visited.extend(names_under(store, prefix)) or visited,
    )
    listed = _pages(s3, True, Prefix="a/b/")
    assert [o["Key"] for o in listed[0]["Contents"]] == ["a/b/c", "a/b/c/d.txt", "a/b/c2"]
    assert visited == ["a/b/c", "a/b/c/d.txt", "a/b/c2"]  # only the keys under the prefix
