"""What knot adds per job on the host, from the run record's host and Batch times:

- ready -> submitted: Snakemake hands the job over (``host.handed_over``) until SubmitJob
  returned (``host.submitted``): spec building, input upload, spec upload, SubmitJob;
- seen -> reported: the poll that saw the job end (``host.seen_finished``) until knot
  reported it (``host.reported``): output download and checks;
- done -> reported: Batch's ``stoppedAt`` until the report, which adds the wait for the
  next status poll (Snakemake's --seconds-between-status-checks).

``python -m benchmarks.overhead RECORD.json`` prints them for a recorded run;
``python -m benchmarks.overhead --neuro`` first runs the neuro example on a fresh emulator
(Docker engine and the knot-base image needed) and then prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEURO = ROOT / "workflow_examples" / "neuro"
SPANS = {
    "ready -> submitted": ("host", "handed_over", "host", "submitted"),
    "seen -> reported": ("host", "seen_finished", "host", "reported"),
    "done -> reported": ("batch", "stopped", "host", "reported"),
}


def spans(record: dict) -> dict[str, list[float]]:
    """Each span's per-job seconds (jobs lacking either end are left out)."""
    found: dict[str, list[float]] = {name: [] for name in SPANS}
    for job in record.get("jobs") or []:
        for name, (a, b, c, d) in SPANS.items():
            start, end = (job.get(a) or {}).get(b), (job.get(c) or {}).get(d)
            if isinstance(start, int | float) and isinstance(end, int | float):
                found[name].append(end - start)
    return found


def summary(record: dict) -> str:
    lines = [f"{'span':20} {'jobs':>4} {'median s':>9} {'max s':>7}"]
    for name, values in spans(record).items():
        if values:
            median, top = statistics.median(values), max(values)
            lines.append(f"{name:20} {len(values):4d} {median:9.3f} {top:7.3f}")
    return "\n".join(lines)


def knot_cli(*args: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake_executor_knot.cli", *args],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return done.stdout


def run_neuro(workdir: Path, poll_s: int) -> Path:
    """The neuro example with knot on an emulator of its own, started and stopped here."""
    env = {**os.environ, "KNOT_HOME": str(workdir / "knot-home")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    folder = workdir / "neuro"
    shutil.copytree(NEURO, folder, ignore=shutil.ignore_patterns(".snakemake", "results"))
    knot_cli("emulator", "start", "--port", "0", "--stop-with", str(os.getpid()), env=env)
    try:
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--executor", "knot", "--knot-emulator",
             "--jobs", "8", "--seconds-between-status-checks", str(poll_s)],
            cwd=folder, env=env, check=True, timeout=1800,
        )  # fmt: skip
    finally:
        knot_cli("emulator", "stop", env=env)
    return max((folder / ".snakemake" / "knot").glob("run-*.json"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead")
    parser.add_argument("record", nargs="?", type=Path, help="a run-*.json record")
    parser.add_argument("--neuro", action="store_true", help="run the neuro example first")
    parser.add_argument("--poll", type=int, default=1, help="seconds between status checks")
    args = parser.parse_args(argv)
    if args.neuro:
        with tempfile.TemporaryDirectory(prefix="knot-overhead-") as tmp:
            record = json.loads(run_neuro(Path(tmp), args.poll).read_text())
    elif args.record:
        record = json.loads(args.record.read_text())
    else:
        parser.error("give a run record or --neuro")
    print(summary(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
