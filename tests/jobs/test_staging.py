"""Local-mode staging against in-process moto: what knot holds, and uploads skipped when a
file is unchanged or was just fetched from S3."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from snakemake_executor_knot.errors import StagingError
from snakemake_executor_knot.jobs.staging import WORKFLOW_ID_FILE, LocalStaging, workflow_id
from snakemake_executor_knot.runtime import manifest
from snakemake_executor_knot.runtime import staging as runtime_staging

from ..conftest import corrupt_object


def test_holds_only_its_own_copies(clients, tmp_path):
    staging = LocalStaging(clients.s3, "knot-bucket", tmp_path)
    assert staging.holds(staging.uri_for("data/a.txt"))
    assert not staging.holds("s3://my-study/data/a.txt")
    assert not staging.holds("s3://knot-bucket/elsewhere/a.txt")


def test_unchanged_and_fetched_files_are_not_uploaded_again(clients, calls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clients.s3.create_bucket(Bucket="knot-bucket")
    staging = LocalStaging(clients.s3, "knot-bucket", tmp_path)
    (tmp_path / "a.txt").write_text("input")
    assert staging.upload_inputs(["a.txt"], "r") == 1
    assert staging.upload_inputs(["a.txt"], "r") == 0
    # A new process sees the stamp in the object's metadata.
    assert LocalStaging(clients.s3, "knot-bucket", tmp_path).upload_inputs(["a.txt"], "r") == 0

    key = staging.key_for("out/b.txt")
    clients.s3.put_object(Bucket="knot-bucket", Key=key, Body=b"made by a job")
    item = {"path": "out/b.txt", "uri": staging.uri_for("out/b.txt"), "directory": False}
    staging.download_outputs([item], "r")
    assert (tmp_path / "out" / "b.txt").read_text() == "made by a job"
    calls.reset()
    assert staging.upload_inputs(["out/b.txt"], "r") == 0
    assert calls["s3.PutObject"] == 0


def test_the_workflow_prefix_is_a_random_id_kept_with_the_workflow(clients, tmp_path):
    """Two machines with the same working-directory path must not share copies."""
    first = LocalStaging(clients.s3, "knot-bucket", tmp_path / "a" / "wf")
    again = LocalStaging(clients.s3, "knot-bucket", tmp_path / "a" / "wf")
    elsewhere = LocalStaging(clients.s3, "knot-bucket", tmp_path / "b" / "wf")
    assert first.prefix == again.prefix != elsewhere.prefix
    kept = json.loads((tmp_path / "a" / "wf" / WORKFLOW_ID_FILE).read_text())["id"]
    assert first.prefix == f"knot/files/{kept}/" and len(kept) == 32
    (tmp_path / "a" / "wf" / ".snakemake" / "knot" / "workflow-id").write_text("../../etc\n")
    replaced = LocalStaging(clients.s3, "knot-bucket", tmp_path / "a" / "wf")
    assert replaced.prefix != first.prefix and ".." not in replaced.prefix


def test_a_copied_workflow_folder_gets_its_own_id(tmp_path):
    """``cp -r`` copies .snakemake/knot/workflow-id too: the copy must not share the
    original's keys in knot's bucket, or the two overwrite each other's files."""
    original = tmp_path / "wf"
    first = workflow_id(original)
    shutil.copytree(original, tmp_path / "copy")
    copied = workflow_id(tmp_path / "copy")
    assert copied != first and len(copied) == 32
    assert workflow_id(original) == first and workflow_id(tmp_path / "copy") == copied
    stored = json.loads((tmp_path / "copy" / WORKFLOW_ID_FILE).read_text())
    assert stored == {"id": copied, "path": os.path.realpath(tmp_path / "copy")}


def test_workflow_id_follows_the_real_path_not_a_link_to_it(tmp_path):
    first = workflow_id(tmp_path / "wf")
    (tmp_path / "link").symlink_to(tmp_path / "wf")
    assert workflow_id(tmp_path / "link") == first


def test_an_older_id_file_keeps_its_id_and_is_bound_to_its_folder(tmp_path):
    """knot's earlier files hold the id alone: the workflow keeps its copies in S3."""
    (tmp_path / "wf" / WORKFLOW_ID_FILE).parent.mkdir(parents=True)
    (tmp_path / "wf" / WORKFLOW_ID_FILE).write_text("0123456789abcdef0123456789abcdef\n")
    assert workflow_id(tmp_path / "wf") == "0123456789abcdef0123456789abcdef"
    stored = json.loads((tmp_path / "wf" / WORKFLOW_ID_FILE).read_text())
    assert stored["path"] == os.path.realpath(tmp_path / "wf")


@pytest.mark.parametrize(
    "text",
    ['{"id": "../../etc", "path": "/"}', '{"id": 1}', "[" * 100_000, '{"path": 5, "id": "x"}'],
)
def test_a_damaged_id_file_gets_a_new_id(tmp_path, text):
    (tmp_path / "wf" / WORKFLOW_ID_FILE).parent.mkdir(parents=True)
    (tmp_path / "wf" / WORKFLOW_ID_FILE).write_text(text)
    made = workflow_id(tmp_path / "wf")
    assert len(made) == 32 and set(made) <= set("0123456789abcdef")
    assert workflow_id(tmp_path / "wf") == made


# --- directory outputs: contained, exact, verified ----------------------------------------


@pytest.fixture
def work(tmp_path, monkeypatch):
    """The working directory, one level below ``tmp_path``: an escape lands in tmp_path."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "work"


@pytest.fixture
def staging(clients, work):
    clients.s3.create_bucket(Bucket="knot-bucket")
    return LocalStaging(clients.s3, "knot-bucket", work)


def put(staging, key: str, body: bytes) -> None:
    staging.s3.put_object(Bucket="knot-bucket", Key=key, Body=body, ChecksumAlgorithm="SHA256")


def put_manifest(staging, prefix: str, files: dict[str, bytes]) -> None:
    entries = [manifest.Entry(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in files.items()]
    put(staging, manifest.manifest_key(prefix), manifest.encode(entries))


def directory_item(staging, path: str) -> dict:
    return {"path": path, "uri": staging.uri_for(path) + "/", "directory": True, "manifest": True}


def files_under(folder: Path) -> list[str]:
    """The files under ``folder``, without knot's own state in .snakemake/."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and ".snakemake" not in p.parts
    )


def test_directory_output_is_exactly_its_manifest(staging, tmp_path):
    """A re-run: the prefix still holds a file of the earlier run and planted keys that
    would escape; only what the job's manifest lists arrives."""
    prefix = staging.key_for("res/tree") + "/"
    put(staging, prefix + "old.txt", b"from the earlier run")
    put(staging, prefix + "../../evil", b"evil")
    put(staging, prefix + "/abs", b"evil")
    put(staging, prefix + "n.txt", b"new")
    put(staging, prefix + "s/m.txt", b"new too")
    put_manifest(staging, prefix, {"n.txt": b"new", "s/m.txt": b"new too"})
    staging.download_outputs([directory_item(staging, "res/tree")], "r")
    assert files_under(tmp_path) == ["work/res/tree/n.txt", "work/res/tree/s/m.txt"]


@pytest.mark.parametrize("name", ["../../evil", "/abs", "s/../../../evil"])
def test_hostile_manifest_is_refused_and_nothing_lands_outside(staging, tmp_path, name):
    prefix = staging.key_for("res/tree") + "/"
    put(staging, prefix + name, b"evil")
    put_manifest(staging, prefix, {name: b"evil"})
    with pytest.raises(StagingError, match="Rule 'r': refusing the key") as caught:
        staging.download_outputs([directory_item(staging, "res/tree")], "r")
    assert prefix + name in str(caught.value)
    assert files_under(tmp_path) == []


def test_directory_output_without_manifest_is_an_error(staging):
    put(staging, staging.key_for("res/tree") + "/n.txt", b"n")
    with pytest.raises(StagingError, match="has no manifest"):
        staging.download_outputs([directory_item(staging, "res/tree")], "r")


def test_file_differing_from_manifest_is_removed(staging, work):
    prefix = staging.key_for("res/tree") + "/"
    put(staging, prefix + "n.txt", b"what S3 holds")
    put_manifest(staging, prefix, {"n.txt": b"what the job wrote"})
    with pytest.raises(StagingError, match="manifest says"):
        staging.download_outputs([directory_item(staging, "res/tree")], "r")
    assert files_under(work) == []


def test_output_path_outside_workdir_is_refused(staging, tmp_path):
    put(staging, staging.key_for("x.txt"), b"x")
    item = {"path": "../x.txt", "uri": staging.uri_for("x.txt"), "directory": False}
    with pytest.raises(StagingError, match="'..' part"):
        staging.download_outputs([item], "r")
    assert files_under(tmp_path) == []


def test_corrupted_output_fails_and_writes_nothing(staging, work):
    put(staging, staging.key_for("out/a.txt"), b"the right bytes")
    corrupt_object("knot-bucket", staging.key_for("out/a.txt"))
    item = {"path": "out/a.txt", "uri": staging.uri_for("out/a.txt"), "directory": False}
    with pytest.raises(StagingError, match="Rule 'r': output out/a.txt .* arrived corrupted"):
        staging.download_outputs([item], "r")
    assert files_under(work) == []


def test_directory_input_gets_a_manifest_of_its_current_files(staging, work):
    (work / "in" / "s").mkdir(parents=True)
    (work / "in" / "a.txt").write_text("a")
    (work / "in" / "s" / "b.txt").write_text("bb")
    assert staging.upload_inputs(["in"], "r") == 2
    (work / "in" / "a.txt").unlink()
    assert staging.upload_inputs(["in"], "r") == 0
    key = manifest.manifest_key(staging.key_for("in"))
    body = staging.s3.get_object(Bucket="knot-bucket", Key=key)["Body"].read()
    assert [(e.name, e.size) for e in manifest.decode(body, key)] == [("s/b.txt", 2)]


def test_keys_never_hold_dot_dot(staging, work):
    assert staging.key_for(str(work / "a" / "b.txt")) == staging.key_for("a/b.txt")
    assert staging.key_for("../ref/g.fa") == staging.prefix + "_abs" + str(work.parent / "ref/g.fa")


def _runtime_upload(staging, work, path: str) -> bytes:
    """A large output as the job's runtime uploads it: in parts, its SHA-256 recorded."""
    data = bytes(range(256)) * (9 * 1024 * 1024 // 256)
    (work / "job-wrote.bin").write_bytes(data)
    transfer = runtime_staging.Transfer("knot-bucket", staging.key_for(path), "job-wrote.bin")
    with runtime_staging.make_transfer_manager(staging.s3) as manager:
        runtime_staging.upload(manager, [transfer])
    return data


def test_large_output_is_checked_whole_and_a_corrupted_one_is_refused(staging, work):
    data = _runtime_upload(staging, work, "out/big.bin")
    item = {"path": "out/big.bin", "uri": staging.uri_for("out/big.bin"), "directory": False}
    staging.download_outputs([item], "r")
    assert (work / "out" / "big.bin").read_bytes() == data

    (work / "out" / "big.bin").unlink()
    corrupt_object("knot-bucket", staging.key_for("out/big.bin"))
    with pytest.raises(StagingError, match="Rule 'r': .*big.bin arrived corrupted: SHA-256"):
        staging.download_outputs([item], "r")
    assert not (work / "out" / "big.bin").exists()


def test_large_output_without_a_recorded_digest_is_refused(staging, work):
    put(staging, staging.key_for("out/big.bin"), b"x" * (9 * 1024 * 1024))
    item = {"path": "out/big.bin", "uri": staging.uri_for("out/big.bin"), "directory": False}
    with pytest.raises(StagingError, match="records no SHA-256"):
        staging.download_outputs([item], "r")
    assert not (work / "out" / "big.bin").exists()


def test_large_inputs_record_their_digest(staging, work):
    (work / "big.in").write_bytes(b"y" * (9 * 1024 * 1024))
    staging.upload_inputs(["big.in"], "r")
    head = staging.s3.head_object(Bucket="knot-bucket", Key=staging.key_for("big.in"))
    assert head["Metadata"]["knot-sha256"] == hashlib.sha256(b"y" * (9 * 1024 * 1024)).hexdigest()


# --- outputs a job made as symbolic links ---------------------------------------------------


def _runtime_upload_link(staging, work, path: str, target: str, body: bytes) -> None:
    """An output the job made as a link (``ln -s target path``), uploaded by the runtime:
    the bytes it leads to, and its target in the metadata."""
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).parent.joinpath(target).write_bytes(body)
    os.symlink(target, work / path)
    transfer = runtime_staging.Transfer("knot-bucket", staging.key_for(path), path)
    with runtime_staging.make_transfer_manager(staging.s3) as manager:
        runtime_staging.upload(manager, [transfer])
    shutil.rmtree(work / path.split("/")[0])


def _item(staging, path: str) -> dict:
    return {"path": path, "uri": staging.uri_for(path), "directory": False}


def test_a_link_output_comes_home_as_a_link_to_its_target(staging, work):
    _runtime_upload_link(staging, work, "out/link.txt", "real.txt", b"linked bytes")
    put(staging, staging.key_for("out/real.txt"), b"linked bytes")
    # The link first: its target arrives after it, in the same job's outputs.
    staging.download_outputs([_item(staging, "out/link.txt"), _item(staging, "out/real.txt")], "r")
    assert os.readlink(work / "out" / "link.txt") == "real.txt"
    assert (work / "out" / "link.txt").read_bytes() == b"linked bytes"


@pytest.mark.parametrize(
    ("target", "why"),
    [("../../outside.txt", "above the workdir"), ("missing.txt", "no such target here")],
)
def test_a_link_target_that_escapes_or_dangles_stays_a_plain_file(staging, work, target, why):
    (work.parent / "outside.txt").write_bytes(b"secret")
    head = {"knot-link": target}
    staging.s3.put_object(
        Bucket="knot-bucket", Key=staging.key_for("out/l.txt"), Body=b"bytes", Metadata=head
    )
    staging.download_outputs([_item(staging, "out/l.txt")], "r")
    assert not (work / "out" / "l.txt").is_symlink(), why
    assert (work / "out" / "l.txt").read_bytes() == b"bytes"
