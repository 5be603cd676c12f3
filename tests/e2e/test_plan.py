"""End to end on the emulator: ``knot plan`` before any run (every rule unknown, bounded by
its runtime limit), then after a real run (forecast from its record, a damaged record
skipped and named), in both I/O modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from .helpers import comparable_environment, snakemake, storage_args

pytestmark = pytest.mark.e2e

BUCKET = "knot-e2e-plan"
KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "4", "--latency-wait", "5")

SNAKEFILE = """
N = int(config.get("count", 2))

rule all:
    input: "total.txt"

rule make:
    output: "data/{i}.txt"
    resources: runtime=5
    shell: "seq 1 {wildcards.i}000 > {output}"

rule part:
    input: "data/{i}.txt"
    output: "parts/{i}.txt"
    resources: runtime=5
    shell: "cat {input} {input} > {output}"

rule total:
    input: expand("parts/{i}.txt", i=range(N))
    output: "total.txt"
    resources: runtime=5
    shell: "cat {input} > {output}"
"""


def knot_plan(workdir, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake_executor_knot.cli", "plan", "--json", *args],
        cwd=workdir,
        env=comparable_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("mode", ["files", "storage"])
def test_plan_before_and_after_a_run(emulator_env, tmp_path, mode):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    extra: tuple[str, ...] = ()
    if mode == "storage":
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        extra = storage_args(emulator_env, BUCKET, f"plan-{os.getpid()}")
    args = (*KNOT, *extra)

    first = knot_plan(tmp_path, *args)
    assert [(r["rule"], r["jobs"], r["forecast"]) for r in first["rules"]] == [
        ("make", 2, "unknown"),
        ("part", 2, "unknown"),
        ("total", 1, "unknown"),
    ]
    assert first["total"]["unknown_rules"] == ["make", "part", "total"]
    bound = first["total"]["unknown_cost_usd_at_most"]
    assert bound is not None and bound > 0  # five jobs at runtime=5 minutes each

    done = snakemake(tmp_path, *args)
    assert done.returncode == 0, done.stdout[-6000:]
    damaged = tmp_path / ".snakemake" / "knot" / "run-20000101T000000-damaged.json"
    damaged.write_text('{"run_id": "x", "jobs": [')

    plan = knot_plan(tmp_path, *args, "--config", "count=4")
    rules = {r["rule"]: r for r in plan["rules"]}
    assert {name: (r["jobs"], r["forecast"], r["samples"]) for name, r in rules.items()} == {
        "make": (2, "as-is", 2),
        "part": (2, "as-is", 2),
        "total": (1, "as-is", 1),
    }
    total = plan["total"]
    assert total["unknown_rules"] == [] and total["jobs"] == 5
    for key in ("wall_s", "cost_usd", "vcpu_hours"):
        low, mid, high = (total[key][k] for k in ("low", "mid", "high"))
        assert 0 < low <= mid <= high, (key, total[key])
    assert total["critical_path"] == ["make", "part", "total"]
    assert plan["runs"] == 1
    (skipped,) = plan["skipped_records"]
    assert skipped["path"].endswith("run-20000101T000000-damaged.json")
    assert "not valid JSON" in skipped["why"]
