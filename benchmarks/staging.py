"""S3 staging throughput (issue item 7): the job runtime's staging against boto3's
``download_file``/``upload_file``, on the same server, for one file and for many."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .config import MIB, Config
from .report import Row, Target
from .runner import BUCKET, REPO, Bench

THROUGHPUT_TARGET = Target(">=", 0.9, on="ratio")
CHUNK = 8 * MIB


def make_files(folder: Path, total: int, count: int) -> list[str]:
    """``count`` files of random bytes adding up to ``total``."""
    folder.mkdir(parents=True, exist_ok=True)
    size = total // count
    for i in range(count):
        with open(folder / f"part-{i:05d}.bin", "wb") as fh:
            left = size
            while left:
                block = os.urandom(min(CHUNK, left))
                fh.write(block)
                left -= len(block)
    return sorted(os.listdir(folder))


def timed(bench: Bench, impl: str, direction: str, prefix: str, folder: Path, keys) -> float:
    args = [
        impl,
        direction,
        BUCKET,
        prefix,
        str(folder),
        *(keys if direction == "download" else []),
    ]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.transfer", *args],
        env=bench.env(), cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout)["seconds"]


def measure(bench: Bench, total: int, count: int) -> dict[tuple[str, str], float]:
    """MiB/s of each (implementation, direction). Both download the same objects."""
    root = bench.root / f"staging-{count}"
    keys = make_files(root / "src", total, count)
    speeds = {}
    for impl in ("boto3", "knot"):
        seconds = timed(bench, impl, "upload", f"staging-{count}/{impl}", root / "src", keys)
        speeds[(impl, "upload")] = total / MIB / seconds
    for impl in ("boto3", "knot"):
        dest = root / f"dst-{impl}"
        seconds = timed(bench, impl, "download", f"staging-{count}/boto3", dest, keys)
        speeds[(impl, "download")] = total / MIB / seconds
        shutil.rmtree(dest)
    shutil.rmtree(root)
    return speeds


def staging_rows(bench: Bench, config: Config) -> list[Row]:
    rows = []
    for count in (1, config.staging_files):
        speeds = measure(bench, config.staging_bytes, count)
        size = f"{config.staging_bytes // MIB} MiB in {count} file{'s' if count > 1 else ''}"
        for direction in ("download", "upload"):
            rows.append(
                Row(
                    "S3 staging",
                    f"{direction} {size} (MiB/s)",
                    speeds[("knot", direction)],
                    speeds[("boto3", direction)],
                    "boto3",
                    THROUGHPUT_TARGET,
                )
            )
    return rows
