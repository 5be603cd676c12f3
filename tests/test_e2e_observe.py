"""End to end on the emulator: what a job used is measured in its real container, lands in
the run record, and knot report sizes the rule from it."""

from __future__ import annotations

import pytest

from .e2e_helpers import knot_report_rows, latest_summary, snakemake

pytestmark = pytest.mark.e2e

KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "4", "--latency-wait", "5")
MIB = 300

MEMORY = f"""
rule all:
    input: "out/big.txt"

rule big:
    output: "out/big.txt"
    resources: mem_mb=4000
    shell:
        "python3 -c 'import sys; b = bytearray({MIB} * 2**20); b[::4096] = b\\"x\\" * "
        "len(b[::4096]); open(sys.argv[1], \\"w\\").write(str(len(b)))' {{output:q}}"
"""


def test_known_allocation_is_measured_and_sized_down(emulator_env, tmp_path):
    (tmp_path / "Snakefile").write_text(MEMORY)
    done = snakemake(tmp_path, *KNOT)
    assert done.returncode == 0, done.stdout[-6000:]
    assert "knot: Batch jobs:" in done.stdout  # progress lines in Snakemake's output
    (job,) = latest_summary(tmp_path)["jobs"]
    usage = job["usage"]
    assert MIB * 0.9 <= usage["peak_rss_mb"] <= MIB * 1.1, usage
    assert usage["exit_status"] == 0 and usage["wall_s"] > 0
    assert job["requested"]["memory_mib"] == 4000 and job["status"] == "SUCCEEDED"
    host, batch = job["host"], job["batch"]
    assert host["handed_over"] <= host["submitted"] <= host["reported"]
    assert batch["created"] <= batch["started"] <= batch["stopped"]
    (row,) = knot_report_rows(tmp_path)
    assert row["rule"] == "big" and row["requested_mem_mb"] == 4000
    assert row["suggested_mem_mb"] < 4000, row
