"""The example workflows and the parity workflow: their DAGs, and the output comparison."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from compare_outputs import compare_trees, tree_digests

REPO = Path(__file__).resolve().parents[2]

# Jobs per rule that each workflow's default config must plan.
EXPECTED_JOBS = {
    "workflow_examples/pi": {"sample": 8, "collect": 1, "estimate": 1, "all": 1},
    "workflow_examples/heat": {"solve": 6, "summarise": 1, "plot": 1, "all": 1},
    "workflow_examples/neuro": {
        **{rule: 6 for rule in ("mask", "tensor", "regions")},
        **{rule: 1 for rule in ("simulate", "group", "figure", "all")},
    },
    "tests/workflows/parity": {
        **{rule: 2 for rule in ("count", "shout", "count_upper", "shell_in_run", "summarise")},
        **{
            rule: 1
            for rule in ("merge", "split", "index", "expand_in_run", "typed_values", "final")
        },
        "all": 1,
    },
}


def job_stats(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run, as {rule: count}."""
    lines = dry_run_output.split("Job stats:", 1)[1].splitlines()
    counts: dict[str, int] = {}
    for line in lines[3:]:  # skip the leading newline, the header and its underline
        rule, _, count = line.strip().rpartition(" ")
        if rule.strip() == "total":
            return counts
        counts[rule.strip()] = int(count)
    raise AssertionError(f"no total line in dry-run output:\n{dry_run_output}")


@pytest.mark.parametrize("workflow", sorted(EXPECTED_JOBS))
def test_dry_run_plans_expected_jobs(workflow, tmp_path):
    workdir = tmp_path / "wf"
    shutil.copytree(REPO / workflow, workdir)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--cores", "2"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert job_stats(proc.stdout) == EXPECTED_JOBS[workflow]


@pytest.mark.parametrize("workflow", ["pi", "heat", "neuro"])
def test_examples_have_both_profiles(workflow):
    base = REPO / "workflow_examples" / workflow / "profiles"
    local = yaml.safe_load((base / "knot-emulator" / "config.yaml").read_text())
    storage = yaml.safe_load((base / "knot-emulator-s3" / "config.yaml").read_text())
    assert local["executor"] == storage["executor"] == "knot"
    assert local["knot-emulator"] is storage["knot-emulator"] is True
    assert storage["default-storage-prefix"] == f"s3://knot-examples/{workflow}"
    assert storage["storage-s3-endpoint-url"] == "http://127.0.0.1:5100"


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_compare_trees_reports_each_kind_of_difference(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        write(run / "results" / "same.txt", b"same")
        write(run / "benchmarks" / "t.tsv", str(run).encode())  # timings: not compared
        write(run / "results" / "d" / ".snakemake_timestamp", str(run).encode())
    write(a / "results" / "changed.txt", b"1")
    write(b / "results" / "changed.txt", b"2")
    write(a / "logs" / "only_a.log", b"")
    assert compare_trees(a, b) == [
        f"only in {a}: logs/only_a.log",
        "differs: results/changed.txt",
    ]
    assert set(tree_digests(b)) == {"results/same.txt", "results/changed.txt"}
