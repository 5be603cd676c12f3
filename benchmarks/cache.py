"""The instance's input cache (issue 22): ``JOBS`` jobs on one instance read the same
input, ``SLOTS`` at a time (an instance runs a few jobs at once), each job a process of
its own running the job runtime's stage-in (``benchmarks.cachejob``) against the counting
S3 server, once with the cache and once without. Downloads are counted on the server (a
1 GiB object is many ranged GETs, so whole downloads are GetObject bytes over the size);
bytes moved from S3 are the jobs' own accounting."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .config import MIB, Config
from .report import Row, Target
from .runner import BUCKET, REPO, Bench
from .server import counts
from .staging import make_files

KEY = "cache/part-00000.bin"  # make_files' name for a single file
SLOTS = 4
DOWNLOADS_TARGET = Target("<=", 1)


def _job(bench: Bench, workdir: Path, cache: Path | None) -> dict:
    env = bench.env()
    if cache is not None:
        env |= {"KNOT_CACHE_DIR": str(cache), "KNOT_CACHE_BYTES": str(4 * 1024 * MIB)}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.cachejob", BUCKET, KEY, str(workdir)],
        env=env, cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.splitlines()[-1])


def _jobs(bench: Bench, root: Path, jobs: int, cache: Path | None) -> tuple[list[dict], float, int]:
    """Every job's report, the wall time of all of them, and GetObject requests."""
    mark = bench.server.tally.mark()
    start = time.perf_counter()
    with ThreadPoolExecutor(SLOTS) as pool:
        reports = list(pool.map(lambda i: _job(bench, root / f"job-{i}", cache), range(jobs)))
    wall = time.perf_counter() - start
    gets = counts(bench.server.tally.since(mark))["s3.GetObject"]
    return reports, wall, gets


def _upload(bench: Bench, root: Path, size: int) -> None:
    assert make_files(root / "src", size, 1) == [KEY.split("/")[1]]
    subprocess.run(
        [sys.executable, "-m", "benchmarks.transfer", "knot", "upload", BUCKET, "cache",
         str(root / "src")],
        env=bench.env(), cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    shutil.rmtree(root / "src")


def cache_rows(bench: Bench, config: Config) -> list[Row]:
    size, jobs = config.cache_bytes, config.cache_jobs
    root = bench.root / "cache-bench"
    _upload(bench, root, size)
    off, off_wall, off_gets = _jobs(bench, root, jobs, None)
    on, on_wall, on_gets = _jobs(bench, root, jobs, root / "instance-cache")
    shutil.rmtree(root)
    downloads_on = sum(r["cache_misses"] + r["cache_bypassed"] for r in on)
    moved_on = sum(r["cache_bytes_downloaded"] for r in on) + sum(
        r["size"] for r in on if r["cache_bypassed"]
    )
    hits = [r["seconds"] for r in on if r["cache_hits"]]
    misses = [r["seconds"] for r in on if r["cache_misses"]]
    section = f"input cache ({jobs} jobs, {size // MIB} MiB, {SLOTS} at a time)"
    gib = 1024 * MIB
    return [
        Row(section, "downloads from S3", downloads_on, jobs, "cache off", DOWNLOADS_TARGET),
        Row(section, "GetObject requests", on_gets, off_gets, "cache off"),
        Row(section, "GiB moved from S3", moved_on / gib, jobs * size / gib, "cache off"),
        Row(section, "wall time of all jobs (s)", on_wall, off_wall, "cache off"),
        Row(section, "stage-in of a cache hit, median (s)", statistics.median(hits),
            statistics.median(r["seconds"] for r in off), "direct download",
            note="copy from the cache volume and SHA-256 check of the copy"),
        Row(section, "stage-in of the one miss (s)", max(misses, default=None),
            statistics.median(r["seconds"] for r in off), "direct download"),
    ]  # fmt: skip
