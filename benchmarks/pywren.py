"""Past the serverless limits Cloudknot compared against (issue 22): a job that runs
longer than 300 s and a job whose input is larger than 1.5 GB, both on knot's emulator
(real containers), in local-files mode, one Snakemake run. What knot adds to each job is
the host's time from handing the job over to reporting it done, less the rule's own run
time that the container measured; the stage-in, container start and host upload are
shown on their own. ``python -m benchmarks --only pywren`` (Docker engine and the
knot-base image needed; about 8 minutes and 2 GiB of disk, removed afterwards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from snakemake_executor_knot.report.records import JobRecord, parse_run

from .config import MIB, Config
from .latency import _env, latest_record
from .overhead import knot_cli
from .report import Row
from .staging import CHUNK

SNAKEFILE = """\
rule all:
    input: "slept.txt", "big.sha256"

rule long:
    output: "slept.txt"
    shell: "sleep {seconds}; echo slept > {{output}}"

rule big:
    input: "big.bin"
    output: "big.sha256"
    shell: "sha256sum {{input}} | cut -d' ' -f1 > {{output}}"
"""


def pywren_rows(config: Config) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="knot-pywren-") as tmp:
        return measure(Path(tmp), config.pywren_long_s, config.pywren_bytes)


def measure(root: Path, seconds: int, size: int) -> list[Row]:
    folder = root / "run"
    folder.mkdir()
    (folder / "Snakefile").write_text(SNAKEFILE.format(seconds=seconds))
    _random_file(folder / "big.bin", size)
    env = _env(root)
    knot_cli("emulator", "start", "--port", "0", "--stop-with", str(os.getpid()), env=env)
    try:
        state = json.loads(knot_cli("emulator", "status", env=env))
        env["AWS_ENDPOINT_URL"] = state["endpoint"]
        launched = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", "--executor", "knot", "--knot-emulator",
             "--jobs", "2", "--latency-wait", "5"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        wall = time.time() - launched
    finally:
        knot_cli("emulator", "stop", env=env)
    if done.returncode != 0:
        raise RuntimeError(f"pywren run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    record = parse_run(json.loads(latest_record(folder).read_text()))
    jobs = {job.rule: job for job in record.jobs}
    section = f"past serverless limits (emulator, local files, run {wall:.0f} s)"
    return [
        *_job_rows(section, f"job of {seconds} s", jobs["long"]),
        *_job_rows(section, f"job with a {size / 1e9:.2f} GB input", jobs["big"]),
    ]


def _job_rows(section: str, label: str, job: JobRecord) -> list[Row]:
    host, batch, usage = job.host, job.batch, job.usage
    total = (host.reported or 0) - (host.handed_over or 0)
    run = usage.run_s or 0
    rows = [
        Row(section, f"{label}: handed over to reported (s)", total),
        Row(section, f"{label}: the rule's own run time (s)", run),
        Row(section, f"{label}: time knot adds (s)", total - run, note="all but the rule's run"),
        Row(section, f"{label}: stage-in (s)", usage.stage_in_s),
        Row(section, f"{label}: stage-in (MiB)", (usage.stage_in_bytes or 0) / MIB),
        Row(section, f"{label}: handed over to submitted (s)",
            (host.submitted or 0) - (host.handed_over or 0), note="host upload of inputs"),
    ]  # fmt: skip
    if batch.started and batch.created:
        rows.append(Row(section, f"{label}: Batch created to started (s)",
                        batch.started - batch.created))  # fmt: skip
    return rows


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        left = size
        while left:
            block = os.urandom(min(CHUNK, left))
            handle.write(block)
            left -= len(block)
