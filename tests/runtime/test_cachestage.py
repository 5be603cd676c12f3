"""Downloads through the instance's input cache with real S3 calls (moto): a second job
on the instance makes no GET for a cached input, small files and a job without a cache
go directly, a directory's manifest names its files' content, and the usage document
says what the cache did."""

from __future__ import annotations

import hashlib
import os

import pytest

from snakemake_executor_knot.runtime import cachestage, manifest, staging
from snakemake_executor_knot.runtime.cache import MIN_BYTES
from snakemake_executor_knot.runtime.spec import FileItem

BUCKET = "knot-runtime-cache"
BIG = hashlib.sha256(b"big").digest() * ((MIN_BYTES + 4096) // 32)


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOT_CACHE_DIR", str(tmp_path / "instance-cache"))
    monkeypatch.setenv("KNOT_CACHE_BYTES", str(1024**3))
    cachestage.reset()
    yield tmp_path / "instance-cache"
    cachestage.reset()


@pytest.fixture
def s3(moto, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = staging.make_s3_client()
    client.create_bucket(Bucket=BUCKET)
    return client


class Gets:
    def __init__(self, s3) -> None:
        self.count = 0
        s3.meta.events.register("before-call.s3.GetObject", self._seen)

    def _seen(self, **_kwargs) -> None:
        self.count += 1


def _job(s3, folder: str, items: list[FileItem]) -> None:
    """One job's stage-in, in its own working directory ``folder``."""
    os.makedirs(folder, exist_ok=True)
    items = [FileItem(f"{folder}/{i.path}", i.uri, i.directory, i.manifest) for i in items]
    with staging.make_transfer_manager(s3) as manager:
        staging.download(manager, staging.plan_downloads(s3, items))


def _upload(s3, name: str, body: bytes, tmp_path) -> FileItem:
    """Uploaded as a job uploads an output: the SHA-256 recorded from 8 MiB on."""
    local = tmp_path / "up" / name
    local.parent.mkdir(exist_ok=True)
    local.write_bytes(body)
    with staging.make_transfer_manager(s3) as manager:
        staging.upload(manager, [staging.Transfer(BUCKET, name, str(local))])
    return FileItem(name, f"s3://{BUCKET}/{name}", False)


def test_second_job_on_the_instance_reads_the_cache_not_s3(s3, cache_env, tmp_path):
    item = _upload(s3, "atlas.bin", BIG, tmp_path)
    gets = Gets(s3)
    _job(s3, "job1", [item])
    first = gets.count
    _job(s3, "job2", [item])
    assert first >= 1 and gets.count == first  # no GET for the second job
    assert (tmp_path / "job1" / "atlas.bin").read_bytes() == BIG
    assert (tmp_path / "job2" / "atlas.bin").read_bytes() == BIG
    (entry,) = cache_env.glob("entries/*/*")
    assert entry.name == hashlib.sha256(BIG).hexdigest()
    fields = cachestage.usage_fields()
    assert (fields["cache_hits"], fields["cache_misses"]) == (1, 1)
    assert fields["cache_bytes_downloaded"] == len(BIG)


def test_object_without_recorded_digest_is_keyed_by_its_etag(s3, cache_env, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="user/ref.bin", Body=BIG)  # the user's own upload
    item = FileItem("ref.bin", f"s3://{BUCKET}/user/ref.bin", False)
    _job(s3, "a", [item])
    gets = Gets(s3)
    _job(s3, "b", [item])
    assert gets.count == 0 and (tmp_path / "b" / "ref.bin").read_bytes() == BIG
    s3.put_object(Bucket=BUCKET, Key="user/ref.bin", Body=BIG[::-1])  # a new version
    _job(s3, "c", [item])
    assert gets.count >= 1 and (tmp_path / "c" / "ref.bin").read_bytes() == BIG[::-1]


def test_small_files_and_jobs_without_a_cache_download_directly(s3, tmp_path, monkeypatch):
    monkeypatch.delenv("KNOT_CACHE_DIR", raising=False)
    cachestage.reset()
    item = _upload(s3, "big.bin", BIG, tmp_path)
    gets = Gets(s3)
    _job(s3, "x", [item])
    _job(s3, "y", [item])
    assert gets.count >= 2 and cachestage.usage_fields() == {}


def test_small_file_is_not_cached(s3, cache_env, tmp_path):
    item = _upload(s3, "small.txt", b"tiny", tmp_path)
    _job(s3, "x", [item])
    assert (tmp_path / "x" / "small.txt").read_bytes() == b"tiny"
    assert list(cache_env.glob("entries/*")) == []


def test_a_directory_file_is_cached_under_its_manifest_sha256(s3, cache_env, tmp_path):
    for name, body in {"d/big.bin": BIG, "d/small.txt": b"s"}.items():
        s3.put_object(Bucket=BUCKET, Key=name, Body=body, **staging.UPLOAD_ARGS)
    entries = [
        {"name": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        for n, b in (("big.bin", BIG), ("small.txt", b"s"))
    ]
    body = manifest.encode([manifest.Entry(**e) for e in entries])
    s3.put_object(Bucket=BUCKET, Key=manifest.manifest_key("d/"), Body=body)
    item = FileItem("d", f"s3://{BUCKET}/d/", True, True)
    _job(s3, "p", [item])
    _job(s3, "q", [item])
    assert (tmp_path / "q" / "d" / "big.bin").read_bytes() == BIG
    (entry,) = cache_env.glob("entries/*/*")
    assert entry.name == hashlib.sha256(BIG).hexdigest()
    assert cachestage.usage_fields()["cache_hits"] == 1


def test_wrong_bytes_under_a_recorded_digest_fail_the_job_as_before(s3, cache_env, tmp_path):
    item = _upload(s3, "liar.bin", BIG, tmp_path)
    head = s3.head_object(Bucket=BUCKET, Key="liar.bin")
    s3.put_object(Bucket=BUCKET, Key="liar.bin", Body=BIG[::-1], Metadata=head["Metadata"])
    with pytest.raises(staging.JobFailure, match="not what was uploaded"):
        _job(s3, "z", [item])
    assert list(cache_env.glob("entries/*")) == []
