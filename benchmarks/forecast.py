"""Accuracy of ``knot plan`` (issue 21): forecast a run from an earlier, smaller one, then run
it and compare the forecast wall time and cost with what the run took and cost.

- Neuro: the neuro example on 2 subjects (the history), plan 6, run 6.
- Fan-out: each job reads one local input and works for a time that grows with its size
  (2 s + 4 s per MB, a wait: a job bound by its input's transfer, say, whose time a shared
  2-core machine does not stretch); 3 inputs of 1, 2 and 4 MB as the history, then 6 of
  1 to 8 MB.

Each workflow first runs once in a folder of its own, so that its images exist and the
history run's start-up is a warm one, as the forecast run's is. Actual wall time is the run
record's (the Snakemake process's start to the record's end), next to launch-to-exit; actual
cost is ``knot report``'s. Target: within 25% with the actual inside the printed range.

``python -m benchmarks.forecast [--out FILE.json]`` (Docker engine and the knot-base image
needed; an emulator of its own is started and stopped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from snakemake_executor_knot.report.records import load_run
from snakemake_executor_knot.report.table import rule_rows, total_cost

from .overhead import knot_cli

REPO = Path(__file__).resolve().parent.parent
NEURO = REPO / "workflow_examples" / "neuro"
TARGET = 0.25
HISTORY_SUBJECTS, PLANNED_SUBJECTS = 2, 6
HISTORY_MB, PLANNED_MB = (1, 2, 4), (1, 2, 3, 5, 6, 8)
# The emulator runs every job on this machine's cores, where a Batch job has its own vCPUs:
# at most as many jobs run at once as there are cores (2), in the history run and in the
# forecast run alike. With 8 at once, 6 jobs took each 2-3 times as long as 2 had (neuro)
# and the fan-out's container start-ups a third longer (see RESULTS.md).
JOBS = os.cpu_count() or 2

FANOUT = """\
SIZES = config["sizes"]

rule all:
    input:
        "total.txt",

rule work:
    input:
        "data/{size}.bin",
    output:
        "sums/{size}.txt",
    run:
        import hashlib
        import time

        data = open(input[0], "rb").read()
        time.sleep(2 + 4 * len(data) / 1e6)
        with open(output[0], "w") as fh:
            fh.write(hashlib.sha256(data).hexdigest() + "\\n")

rule total:
    input:
        expand("sums/{size}.txt", size=SIZES),
    output:
        "total.txt",
    shell:
        "cat {input} > {output}"
"""


def neuro_args(n: int) -> list[str]:
    subjects = [f"sub-{i:02d}" for i in range(1, n + 1)]
    patients = subjects[n // 2 :]
    return [
        "--workflow-profile", "profiles/knot-emulator", "--jobs", str(JOBS),
        "--config", f"subjects=[{','.join(subjects)}]", f"patients=[{','.join(patients)}]",
    ]  # fmt: skip


def fanout_args(sizes: tuple[int, ...]) -> list[str]:
    return [
        "--executor", "knot", "--knot-emulator", "--jobs", str(JOBS),
        "--config", f"sizes=[{','.join(map(str, sizes))}]",
    ]  # fmt: skip


def write_fanout(folder: Path, sizes: tuple[int, ...]) -> None:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "Snakefile").write_text(FANOUT)
    for mb in sizes:
        path = folder / "data" / f"{mb}.bin"
        if not path.exists():
            path.write_bytes(os.urandom(mb * 1_000_000))


def snakemake(folder: Path, args: list[str], env: dict) -> float:
    """One run; its launch-to-exit seconds."""
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=folder, env=env,
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"run in {folder} failed:\n{done.stderr[-4000:]}")
    return time.time() - launched


def plan(folder: Path, args: list[str], env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake_executor_knot.cli", "plan", "--json", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"plan in {folder} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def actual(folder: Path, exit_s: float) -> dict:
    """The newest run's wall time and cost, from its record."""
    path = max((folder / ".snakemake" / "knot").glob("run-*.json"))
    run = load_run(path)
    start = run.process_started if run.process_started is not None else run.started
    assert start is not None and run.ended is not None
    return {
        "wall_s": run.ended - start,
        "exit_s": exit_s,
        "cost_usd": total_cost(rule_rows(run)),
        "jobs": len(run.jobs),
    }


def compare(name: str, forecast: dict, measured: dict, load: tuple[float, ...]) -> dict:
    total = forecast["total"]
    out = {"workflow": name, "load_1m_5m_15m": load, "jobs": measured["jobs"]}
    for key in ("wall_s", "cost_usd"):
        predicted, value = total[key], measured[key]
        error = (predicted["mid"] - value) / value
        inside = predicted["low"] <= value <= predicted["high"]
        out[key] = {
            **predicted,
            "actual": value,
            "error": error,
            "inside": inside,
            "met": inside and abs(error) <= TARGET,
        }
    out["exit_s"] = measured["exit_s"]
    out["forecasts"] = {r["rule"]: r["forecast"] for r in forecast["rules"]}
    return out


def measure(root: Path, name: str, history: list[str], planned: list[str], env, setup) -> dict:
    """Warm-up, history run, plan, forecast run, in folders under ``root``."""
    warm, folder = root / f"{name}-warm", root / name
    setup(warm, history)
    snakemake(warm, history, env)
    setup(folder, history)
    snakemake(folder, history, env)
    setup(folder, planned)
    forecast = plan(folder, planned, env)
    (root / f"{name}-plan.json").write_text(json.dumps(forecast, indent=1))
    exit_s = snakemake(folder, planned, env)
    return compare(name, forecast, actual(folder, exit_s), os.getloadavg())


def markdown(results: list[dict]) -> str:
    lines = [
        "| workflow | metric | forecast (range) | actual | error | inside | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for key, unit in (("wall_s", "s"), ("cost_usd", "USD")):
            m = r[key]
            digits = 1 if unit == "s" else 6
            lines.append(
                f"| {r['workflow']} | {key} | {m['mid']:.{digits}f} ({m['low']:.{digits}f}-"
                f"{m['high']:.{digits}f}) | {m['actual']:.{digits}f} | {m['error']:+.1%} | "
                f"{'yes' if m['inside'] else 'no'} | {'yes' if m['met'] else 'no'} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--only", nargs="+", choices=WORKFLOWS, default=list(WORKFLOWS))
    parser.add_argument(
        "--keep", type=Path, help="run in this folder and keep it (records, plans, logs)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="knot-forecast-") as tmp:
        root = args.keep.resolve() if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_"))},
            "KNOT_HOME": str(root / "knot-home"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        knot_cli("emulator", "start", "--port", "0", "--stop-with", str(os.getpid()), env=env)
        try:
            results = run_workflows(root, env, args.only)
        finally:
            knot_cli("emulator", "stop", env=env)
    print(markdown(results))
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


WORKFLOWS = ("neuro", "fan-out")


def run_workflows(root: Path, env: dict, only: list[str]) -> list[dict]:
    def neuro_setup(folder: Path, _args) -> None:
        if not folder.exists():
            shutil.copytree(NEURO, folder, ignore=shutil.ignore_patterns(".snakemake", "results"))

    def fanout_setup(folder: Path, args: list[str]) -> None:
        sizes = tuple(int(s) for s in args[-1].split("=", 1)[1].strip("[]").split(","))
        write_fanout(folder, sizes)

    results = []
    if "neuro" in only:
        results.append(measure(
            root, "neuro", neuro_args(HISTORY_SUBJECTS), neuro_args(PLANNED_SUBJECTS), env,
            neuro_setup,
        ))  # fmt: skip
    if "fan-out" in only:
        results.append(measure(
            root, "fan-out", fanout_args(HISTORY_MB), fanout_args(PLANNED_MB), env,
            fanout_setup,
        ))  # fmt: skip
    return results


if __name__ == "__main__":
    sys.exit(main())
