"""End to end: the examples and the parity workflow under `--executor knot` on the emulator
give the same bytes as `--executor local`; a warm re-run builds and registers nothing; a
failing job shows its log tail and exit code and leaves no complete-looking output."""

from __future__ import annotations

import re
import struct

import pytest

from ..report.samples import REQUIRED
from .helpers import (
    EXAMPLES,
    ROOT,
    bucket_digests,
    copy_workflow,
    file_digests,
    knot_report,
    knot_report_json,
    latest_summary,
    outputs_of,
    snakemake,
)

pytestmark = pytest.mark.e2e

KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "8", "--latency-wait", "5")
LOCAL = ("--cores", "2")


def _run_both(src, tmp_path, extra=(), knot_extra=()):
    """Run one copy locally and one with knot; return both sets of output digests."""
    local_dir = copy_workflow(src, tmp_path / "local")
    knot_dir = copy_workflow(src, tmp_path / "knot")
    before = file_digests(local_dir)
    local = snakemake(local_dir, *LOCAL, *extra)
    assert local.returncode == 0, local.stdout[-3000:]
    result = snakemake(knot_dir, *KNOT, *extra, *knot_extra)
    assert result.returncode == 0, result.stdout[-6000:]
    _check_progress(result.stdout, knot_dir)
    return outputs_of(local_dir, before), outputs_of(knot_dir, before), knot_dir


def _check_progress(stdout: str, knot_dir) -> None:
    """The run said the stack check, each image (found in ECR, or built n of m and pushed)
    and each submission's Batch id, and ended with its per-rule table."""
    assert re.search(r"knot: the stack '\S+' in \S+ is ready \(\d+\.\d s\)", stdout), stdout[:3000]
    images = latest_summary(knot_dir)["image_builds"]
    assert images, "the record lists no image"
    for image in images:
        rules = ", ".join(image["rules"])
        if image["outcome"] == "cached":
            assert re.search(rf"knot: image for rules? {rules} found in ECR", stdout), rules
        else:
            assert re.search(
                rf"knot: built image \d+ of \d+ for rules? {rules} in [\d.]+ s, \d+ MB", stdout
            )
            assert re.search(rf"knot: pushed the image for rules? {rules} in", stdout), rules
    for job in latest_summary(knot_dir)["jobs"]:
        parent = job["batch_id"].split(":")[0]
        assert re.search(rf"knot: rule {job['rule']}.*Batch (array )?job {parent}\b", stdout)
    assert re.search(r"knot: wall time [\d.ms ]+, cost \$", stdout), stdout[-3000:]


# Batch jobs per rule of the neuro example's default config (rule all runs on the host).
NEURO_JOBS = {"simulate": 1, "mask": 6, "tensor": 6, "regions": 6, "group": 1, "figure": 1}
# A page that opens offline fetches nothing: no src/href/url() pointing at another host.
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""")


@pytest.mark.parametrize("example", ["pi", "heat", "neuro"])
def test_example_matches_local(example, emulator_env, tmp_path):
    local, knot, knot_dir = _run_both(EXAMPLES / example, tmp_path)
    assert local, "the local run produced nothing"
    assert knot == local
    if example == "neuro":
        group = "results/bids/derivatives/dmri/group"
        assert {f"{group}/figure.png", f"{group}/stats.tsv"} <= local.keys()
        _check_neuro_report(knot_dir)


def _check_neuro_report(knot_dir):
    """knot report on the run: the JSON document, then the offline HTML page and the PNG."""
    document = knot_report_json(knot_dir)
    assert document["schema_version"] == 1 and document["wall_time_s"] > 0
    # Rules in DAG order; every job's wildcards and Batch id; each image found or built.
    assert [row["rule"] for row in document["rules"]] == list(NEURO_JOBS)
    masks = [job for job in document["jobs"] if job["rule"] == "mask"]
    assert sorted(job["wildcards"]["subject"] for job in masks) == [
        f"sub-{n:02d}" for n in range(1, 7)
    ] and all(job["batch_id"] and job["exit_code"] == 0 for job in masks)
    assert document["images"]["built"] + document["images"]["reused"] == len(NEURO_JOBS)
    assert document["versions"]["knot"] and "--executor" in document["command"]
    rows = {row["rule"]: row for row in document["rules"]}
    assert {rule: rows[rule]["jobs"] for rule in rows} == NEURO_JOBS
    for row in rows.values():
        assert row.keys() >= REQUIRED, row
        assert row["wall_s"] > 0 and row["peak_rss_mb"] > 0 and row["cost_usd"] > 0, row
    printed = knot_report(knot_dir, "--out", "report")
    assert "(estimate)" in printed, printed  # the emulator's cost is labelled an estimate
    (html,) = (knot_dir / "report").glob("knot-report-*.html")
    page = html.read_text()
    assert REMOTE.search(page) is None, REMOTE.search(page)
    assert "data:image/png;base64," in page  # the timeline travels inside the page
    for rule, jobs in NEURO_JOBS.items():  # a row of the per-rule table
        assert f"<tr><td>{rule}</td><td>{jobs}</td>" in page, rule
    png = html.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 800 and height >= 400, (width, height)


def test_parity_workflow_matches_local_and_warm_rerun_is_cached(emulator_env, tmp_path):
    local, knot, knot_dir = _run_both(ROOT / "tests" / "workflows" / "parity", tmp_path)
    assert local
    assert knot == local

    rerun = snakemake(knot_dir, *KNOT, "--forceall")
    assert rerun.returncode == 0, rerun.stdout[-6000:]
    summary = latest_summary(knot_dir)
    assert summary["images"]["built"] == 0
    assert summary["images"]["pushed"] == 0
    calls = summary["calls"]
    for operation in ("CreateStack", "UpdateStack"):
        assert calls.get(f"cloudformation.{operation}", 0) == 0
    assert calls.get("batch.RegisterJobDefinition", 0) == 0
    assert calls.get("batch.SubmitJob", 0) >= 1


FAILING = """
rule all:
    input: "out/result.txt"

rule flaky:
    output: "out/result.txt"
    run:
        with open(output[0], "w") as fh:
            fh.write("partial")
        if config.get("fail", True):
            raise ValueError("boom from the run block")
        with open(output[0], "w") as fh:
            fh.write("complete")
"""


def test_failure_shows_log_tail_and_rerun_after_fix_completes(emulator_env, tmp_path):
    (tmp_path / "Snakefile").write_text(FAILING)
    failed = snakemake(tmp_path, *KNOT)
    assert failed.returncode != 0
    assert "exit code 1" in failed.stdout, failed.stdout[-6000:]
    assert "ValueError: boom from the run block" in failed.stdout
    assert list((tmp_path / ".snakemake" / "log" / "knot").glob("*.log"))
    # The job wrote a partial output before failing; nothing may look complete.
    assert not (tmp_path / "out" / "result.txt").exists()

    fixed = snakemake(tmp_path, *KNOT, "--config", "fail=False")
    assert fixed.returncode == 0, fixed.stdout[-6000:]
    assert (tmp_path / "out" / "result.txt").read_text() == "complete"


@pytest.mark.parametrize("example", ["pi", "neuro"])
def test_storage_mode_matches_local(example, emulator_env, tmp_path):
    """Jobs read and write the storage prefix directly; the bucket ends up holding the same
    bytes a local run writes."""
    bucket, prefix = "knot-e2e", f"{example}/"
    storage = (
        "--default-storage-provider", "s3",
        "--default-storage-prefix", f"s3://{bucket}/{example}",
        "--storage-s3-endpoint-url", emulator_env["AWS_ENDPOINT_URL"],
        "--storage-s3-access-key", "testing", "--storage-s3-secret-key", "testing",
        "--storage-s3-region", "us-east-1",
    )  # fmt: skip
    local_dir = copy_workflow(EXAMPLES / example, tmp_path / "local")
    before = file_digests(local_dir)
    assert snakemake(local_dir, *LOCAL).returncode == 0
    local = outputs_of(local_dir, before)

    knot_dir = copy_workflow(EXAMPLES / example, tmp_path / "knot")
    result = snakemake(knot_dir, *KNOT, *storage)
    assert result.returncode == 0, result.stdout[-6000:]
    stored = bucket_digests(bucket, prefix)
    stored = {k: v for k, v in stored.items() if not k.startswith("benchmarks/")}
    assert stored == local
    # Nothing travelled through the host: no output was written locally.
    assert not (knot_dir / "results").exists()
