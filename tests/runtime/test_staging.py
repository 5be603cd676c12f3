"""The runtime's transfers against in-process moto: directory downloads contained and exact,
manifests written after a directory output, and corrupted bytes refused."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from botocore.config import Config

from snakemake_executor_knot.runtime import manifest, staging
from snakemake_executor_knot.runtime.contract import MANIFEST_MAX_BYTES
from snakemake_executor_knot.runtime.report import JobFailure
from snakemake_executor_knot.runtime.spec import FileItem

from ..conftest import corrupt_object

BUCKET = "knot-runtime-staging"


@pytest.fixture
def work(tmp_path, monkeypatch):
    """The job's working directory, one level below ``tmp_path`` so that an escape would
    land in ``tmp_path``."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "work"


@pytest.fixture
def s3(moto, work):
    client = staging.make_s3_client()
    client.create_bucket(Bucket=BUCKET)
    return client


def put(s3, key: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, **staging.UPLOAD_ARGS)


def put_manifest(s3, prefix: str, files: dict[str, bytes]) -> None:
    entries = [
        {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in files.items()
    ]
    body = json.dumps({"version": 1, "files": entries}).encode()
    put(s3, manifest.manifest_key(prefix), body)


def fetch(s3, items: list[FileItem]) -> None:
    with staging.make_transfer_manager(s3) as manager:
        staging.download(manager, staging.plan_downloads(s3, items))


def files_under(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("planted", ["w/in/dir/../../evil", "w/in/dir//abs"])
def test_listed_directory_refuses_planted_keys(s3, tmp_path, planted):
    put(s3, "w/in/dir/a.txt", b"a")
    put(s3, planted, b"evil")
    item = FileItem("in/dir", f"s3://{BUCKET}/w/in/dir/", directory=True)
    with pytest.raises(JobFailure, match="refusing the key") as caught:
        fetch(s3, [item])
    assert planted in str(caught.value)
    assert files_under(tmp_path) == []  # refused while planning: nothing was written


def test_manifest_directory_is_exact_and_ignores_stale_and_planted_keys(s3, work):
    put(s3, "w/in/dir/a.txt", b"new a")
    put(s3, "w/in/dir/sub/b.txt", b"new b")
    put(s3, "w/in/dir/stale.txt", b"from an earlier run")
    put(s3, "w/in/dir/../../evil", b"evil")
    put_manifest(s3, "w/in/dir/", {"a.txt": b"new a", "sub/b.txt": b"new b"})
    fetch(s3, [FileItem("in/dir", f"s3://{BUCKET}/w/in/dir/", directory=True, manifest=True)])
    assert files_under(work) == ["in/dir/a.txt", "in/dir/sub/b.txt"]
    assert (work / "in/dir/sub/b.txt").read_bytes() == b"new b"


@pytest.mark.parametrize("name", ["../../evil", "/abs", "a/../../../x"])
def test_hostile_manifest_is_refused(s3, tmp_path, name):
    put(s3, f"w/d/{name}", b"evil")
    put_manifest(s3, "w/d/", {name: b"evil"})
    with pytest.raises(JobFailure, match="refusing"):
        fetch(s3, [FileItem("d", f"s3://{BUCKET}/w/d/", directory=True, manifest=True)])
    assert files_under(tmp_path) == []


def test_file_differing_from_its_manifest_fails(s3):
    put(s3, "w/d/a.txt", b"what S3 holds")
    put_manifest(s3, "w/d/", {"a.txt": b"what the job wrote"})
    with pytest.raises(JobFailure, match="differ from their manifest"):
        fetch(s3, [FileItem("d", f"s3://{BUCKET}/w/d/", directory=True, manifest=True)])


def test_missing_manifest_fails_clearly(s3):
    put(s3, "w/d/a.txt", b"a")
    with pytest.raises(JobFailure, match="manifest of directory d"):
        fetch(s3, [FileItem("d", f"s3://{BUCKET}/w/d/", directory=True, manifest=True)])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply to be read as JSON"),
        (b" " * (MANIFEST_MAX_BYTES + 1), "larger than 67,108,864 bytes"),
    ],
    ids=["deep", "huge"],
)
def test_hostile_manifest_body_fails_the_job_clearly(s3, work, body, says):
    """A manifest is read from S3: one nested 100,000 deep or over the size cap is a
    refusal naming it, not a RecursionError or a read without end."""
    put(s3, "w/d/a.txt", b"a")
    put(s3, manifest.manifest_key("w/d/"), body)
    with pytest.raises(
        JobFailure, match=f"manifest of directory d.*w/d.knot-manifest.json.*{says}"
    ):
        fetch(s3, [FileItem("d", f"s3://{BUCKET}/w/d/", directory=True, manifest=True)])
    assert files_under(work) == []


def test_optional_manifest_is_followed_when_there_and_absent_means_every_file(s3, work):
    """A directory in the user's storage: with a manifest (knot wrote it) exactly its files,
    without one (the user's own data) every file under the prefix."""
    put(s3, "w/ours/attempt-1.txt", b"left by a reclaimed attempt")
    put(s3, "w/ours/a.txt", b"a")
    put_manifest(s3, "w/ours/", {"a.txt": b"a"})
    put(s3, "w/theirs/x.txt", b"x")
    optional = {"directory": True, "manifest": True, "manifest_optional": True}
    fetch(s3, [FileItem("ours", f"s3://{BUCKET}/w/ours/", **optional)])
    fetch(s3, [FileItem("theirs", f"s3://{BUCKET}/w/theirs/", **optional)])
    assert files_under(work) == ["ours/a.txt", "theirs/x.txt"]


def test_corrupted_download_fails_and_writes_nothing(s3, work):
    put(s3, "w/a.txt", b"the right bytes")
    corrupt_object(BUCKET, "w/a.txt")
    with pytest.raises(JobFailure, match="checksum") as caught:
        fetch(s3, [FileItem("in/a.txt", f"s3://{BUCKET}/w/a.txt")])
    assert "w/a.txt" in str(caught.value)
    assert files_under(work) == []


def test_output_manifest_round_trips(s3, work):
    (work / "out" / "tree" / "s").mkdir(parents=True)
    (work / "out" / "tree" / "n.txt").write_bytes(b"n")
    (work / "out" / "tree" / "s" / "m.txt").write_bytes(b"mm")
    output = FileItem("out/tree", f"s3://{BUCKET}/w/out/tree/", directory=True, manifest=True)
    with staging.make_transfer_manager(s3) as manager:
        staging.upload(manager, staging.plan_uploads([output]))
    staging.upload_manifests(s3, [output])
    body = s3.get_object(Bucket=BUCKET, Key="w/out/tree.knot-manifest.json")["Body"].read()
    entries = manifest.decode(body, "test")
    assert [(e.name, e.size) for e in entries] == [("n.txt", 1), ("s/m.txt", 2)]
    put(s3, "w/out/tree/stale.txt", b"old")
    copy = FileItem("copy", output.uri, directory=True, manifest=True)
    fetch(s3, [copy])
    assert files_under(work / "copy") == ["n.txt", "s/m.txt"]


def test_corruption_is_real_and_only_validation_catches_it(s3):
    """The control for the test above: a client told to validate only when required reads
    the flipped bytes without complaint; knot's client is told otherwise."""
    put(s3, "w/b.txt", b"the right bytes")
    corrupt_object(BUCKET, "w/b.txt")
    lax = boto3.client("s3", config=Config(response_checksum_validation="when_required"))
    assert lax.get_object(Bucket=BUCKET, Key="w/b.txt")["Body"].read() != b"the right bytes"
    assert s3.meta.config.response_checksum_validation == "when_supported"
    assert s3.meta.config.request_checksum_calculation == "when_supported"


BIG = 9 * 1024 * 1024  # above WHOLE_CHECK_BYTES: travels in parts both ways


def _upload_big(s3, work, key: str) -> bytes:
    data = bytes(range(256)) * (BIG // 256)
    (work / "src.bin").write_bytes(data)
    with staging.make_transfer_manager(s3) as manager:
        staging.upload(manager, [staging.Transfer(BUCKET, key, str(work / "src.bin"))])
    return data


def test_large_file_round_trips_with_its_recorded_digest(s3, work):
    data = _upload_big(s3, work, "w/big.bin")
    head = s3.head_object(Bucket=BUCKET, Key="w/big.bin")
    assert head["Metadata"]["knot-sha256"] == hashlib.sha256(data).hexdigest()
    fetch(s3, [FileItem("in/big.bin", f"s3://{BUCKET}/w/big.bin")])
    assert (work / "in" / "big.bin").read_bytes() == data


def test_corrupted_large_download_fails_and_keeps_nothing(s3, work):
    _upload_big(s3, work, "w/big.bin")
    corrupt_object(BUCKET, "w/big.bin")
    with pytest.raises(JobFailure, match=r"w/big.bin .*corrupted, nothing kept: SHA-256"):
        fetch(s3, [FileItem("in/big.bin", f"s3://{BUCKET}/w/big.bin")])
    assert not (work / "in" / "big.bin").exists()


def test_ranged_parts_escape_s3s_checksums_without_the_digest(s3, work):
    """The control for the test above: the same corrupted object comes down in ranged
    parts without a word from botocore; only knot's whole-file check sees it."""
    data = _upload_big(s3, work, "w/big.bin")
    corrupt_object(BUCKET, "w/big.bin")
    with staging.make_transfer_manager(s3) as manager:
        manager.download(BUCKET, "w/big.bin", str(work / "lax.bin")).result()
    assert (work / "lax.bin").read_bytes() != data
