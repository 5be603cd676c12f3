"""The benchmarks in their small (CI) configuration, plus the pure parts they rest on.

The small run takes about two minutes on 2 cores: knot and the aws-batch plugin each run a
150-job fan-out and a 30-job, 3-stage pipeline against moto. API-call counts are
deterministic and asserted; timings are only reported.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.calls import calls_per_cycle, cycle_windows
from benchmarks.latency import Timed
from benchmarks.latency import rows as latency_rows_of
from benchmarks.overhead import spans, summary
from benchmarks.report import Row, Target, table
from benchmarks.server import Request, s3_operation
from benchmarks.workflows import fanout, pipeline

REPO = Path(__file__).resolve().parent.parent


def test_s3_operations_are_named_from_method_and_query():
    assert s3_operation("PUT", "/b/k", {}) == "PutObject"
    assert s3_operation("HEAD", "/b/k/x", {}) == "HeadObject"
    assert s3_operation("GET", "/b", {"list-type": ["2"]}) == "ListObjectsV2"
    assert s3_operation("POST", "/b/k", {"uploads": [""]}) == "CreateMultipartUpload"
    assert s3_operation("PUT", "/b/k", {"uploadId": ["1"], "partNumber": ["2"]}) == "UploadPart"
    assert s3_operation("PUT", "/b/k", {}, copy_source=True) == "CopyObject"


def test_targets_check_the_knot_value_or_the_ratio():
    row = Row("s", "m", 0.01, 1.0, "other", Target("<=", 0.02, asserted=True))
    assert row.passed and not row.failed_assertion
    missed = Row("s", "m", 0.5, 1.0, "other", Target("<=", 0.02, asserted=True))
    assert missed.failed_assertion
    slow = Row("s", "m", 3.0, 1.0, "local", Target("<=", 1.5, on="ratio"))
    assert slow.passed is False and not slow.failed_assertion  # timings are never asserted
    assert "FAIL" in table([missed]) and "pass" in table([row])


def test_workflows_list_every_output_they_seed():
    assert len(fanout(7).outputs) == 7 and fanout(7).jobs == 7
    pipe = pipeline(4)
    assert pipe.jobs == 12 and len(pipe.outputs) == 12
    assert "knot_image=IMAGE" in pipe.snakefile


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> tuple[int, dict, str]:
    out = tmp_path_factory.mktemp("bench") / "small.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--small", "--only", "calls", "staging"]
        + ["--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    data = json.loads(out.read_text()) if out.exists() else {"rows": []}
    return proc.returncode, data, proc.stdout + proc.stderr


def _row(data: dict, section: str, metric: str) -> dict:
    found = [r for r in data["rows"] if r["section"].startswith(section) and r["metric"] == metric]
    assert found, f"no row {section} / {metric}"
    return found[0]


def test_small_benchmark_meets_every_call_target(small_run):
    code, data, output = small_run
    assert code == 0, output[-4000:]
    asserted = [r for r in data["rows"] if r["target"] and "asserted" in r["target"]]
    assert len(asserted) == 4  # fan-out SubmitJob, 2 x DescribeJobs per cycle, warm Register
    assert all(r["passed"] for r in asserted), asserted


def test_small_benchmark_counts_calls_per_job(small_run):
    _, data, _ = small_run
    submit = _row(data, "calls (fanout", "SubmitJob per job")
    assert submit["knot"] <= 0.02
    assert submit["baseline"] == 1.0  # the aws-batch plugin: one SubmitJob per job
    # knot writes one spec object per SubmitJob (the storage plugin writes nothing here).
    assert _row(data, "calls (fanout", "PutObject per job")["knot"] == submit["knot"]
    register = _row(data, "calls (fanout", "RegisterJobDefinition per job")
    assert register["knot"] == 0 and register["baseline"] == 1.0
    assert _row(data, "warm run", "RegisterJobDefinition calls, first run")["knot"] == 1


def test_small_benchmark_reports_startup_and_staging(small_run):
    _, data, _ = small_run
    start = _row(data, "warm start", "launch to first SubmitJob (s) vs local's first job")
    assert start["knot"] > 0 and start["baseline"] > 0
    staging = [r for r in data["rows"] if r["section"] == "S3 staging"]
    assert len(staging) == 4 and all(r["knot"] > 0 and r["baseline"] > 0 for r in staging)


def test_overhead_spans_come_from_the_run_record():
    job = {
        "host": {"handed_over": 10.0, "submitted": 10.4, "seen_finished": 30.0, "reported": 30.2},
        "batch": {"stopped": 29.0},
    }
    record = {"jobs": [job, {"host": {"handed_over": 1.0}, "batch": {}}]}
    found = spans(record)
    assert found["ready -> submitted"] == [pytest.approx(0.4)]
    assert found["seen -> reported"] == [pytest.approx(0.2)]
    assert found["done -> reported"] == [pytest.approx(1.2)]
    assert "ready -> submitted" in summary(record)


def test_latency_rows_compare_wall_times_and_list_the_critical_path(tmp_path):
    knot = Timed(30.0, 0.0, {"cycles": [{"time": 1.0, "active": 20}] * 12}, tmp_path)
    plugin = Timed(120.0, 0.0, {"cycles": [{"time": 1.0, "active": 20}] * 9}, tmp_path)
    spent = [("container start", 4.5, "Docker"), ("status polling", 1.0, "knot")]
    rows = latency_rows_of(knot, plugin, spent)
    wall = rows[0]
    assert (wall.knot, wall.baseline, wall.ratio, wall.passed) == (30.0, 120.0, 0.25, True)
    assert rows[1].knot == 12 and rows[1].baseline == 9
    assert [r.metric for r in rows[2:]] == [
        "knot's critical path: container start (s)",
        "knot's critical path: status polling (s)",
    ]
    assert rows[2].note == "Docker"


def test_calls_are_counted_within_each_cycles_own_window():
    cycles = [{"time": 10.0, "active": 150, "end": 10.5}, {"time": 12.0, "active": 150}]
    run = SimpleNamespace(
        trace={"cycles": cycles},
        requests=[Request(t, "batch", "DescribeJobs") for t in (10.1, 10.2, 11.0, 12.1, 99.0)],
    )
    # The call at 11.0 falls between cycles (e.g. the end of the run's instance lookup);
    # the second cycle, from an older trace without an end, runs on to the last call.
    assert cycle_windows(run) == [(10.0, 10.5, 150), (12.0, math.inf, 150)]
    assert calls_per_cycle(run, "batch.DescribeJobs") == 1.0
