"""Local-mode staging against in-process moto: what knot holds, and uploads skipped when a
file is unchanged or was just fetched from S3."""

from __future__ import annotations

from snakemake_executor_knot.staging import LocalStaging


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
    kept = (tmp_path / "a" / "wf" / ".snakemake" / "knot" / "workflow-id").read_text().strip()
    assert first.prefix == f"knot/files/{kept}/" and len(kept) == 32
    (tmp_path / "a" / "wf" / ".snakemake" / "knot" / "workflow-id").write_text("../../etc\n")
    replaced = LocalStaging(clients.s3, "knot-bucket", tmp_path / "a" / "wf")
    assert replaced.prefix != first.prefix and ".." not in replaced.prefix
