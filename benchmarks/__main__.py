"""``python -m benchmarks [--small]``: run every benchmark, print one table, and exit 1 if
an API-call target is missed (timings are reported, never asserted)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from . import calls, startup
from .config import FULL, SMALL, Config
from .report import Row, markdown, table
from .runner import Bench, run
from .server import CountingMotoServer
from .workflows import fanout, pipeline

PARTS = (
    "calls",
    "staging",
    "scale",
    "listing",
    "cache",
    "images",
    "latency",
    "pywren",
    "conda",
)
# Parts run only when named with --only: the conformance sweep takes hours.
ON_REQUEST = ("conformance",)


def call_benchmarks(bench: Bench, config: Config) -> list[Row]:
    """Items 2-4: calls per job on the fan-out and the pipeline, warm run, warm start."""
    fan = fanout(config.fanout_jobs)
    pipe = pipeline(config.pipeline_jobs_per_stage)
    cold = run(bench, fan, "knot")  # creates knot's stack and job definition
    warm = run(bench, fan, "knot")
    plugin_fan = run(bench, fan, "aws-batch")
    local = run(bench, fan, "local", first_job_only=True)
    knot_pipe = run(bench, pipe, "knot")
    plugin_pipe = run(bench, pipe, "aws-batch")
    rows = [
        *calls.call_rows(f"calls ({fan.name})", warm, plugin_fan, fanout=True),
        *calls.call_rows(f"calls ({pipe.name})", knot_pipe, plugin_pipe, fanout=False),
        *calls.warm_rows(cold, warm),
        *startup.startup_rows(warm, local, plugin_fan),
    ]
    return rows


def run_parts(config: Config, parts: tuple[str, ...], root: Path) -> list[Row]:
    rows: list[Row] = []
    with CountingMotoServer() as server:
        bench = Bench(server, root)
        bench.setup()
        if "calls" in parts:
            rows += _done(call_benchmarks(bench, config))
        if "staging" in parts:
            from .staging import staging_rows

            rows += _done(staging_rows(bench, config))
        if "scale" in parts and config.scale_jobs:
            from .scale import scale_rows

            rows += _done(scale_rows(bench, config))
        if "cache" in parts:
            from .cache import cache_rows

            rows += _done(cache_rows(bench, config))
    if "listing" in parts:
        from .listing import listing_rows

        rows += _done(listing_rows())
    if "images" in parts and config.images:
        from .images import image_rows

        rows += _done(image_rows())
    if "conda" in parts and config.images:
        from .conda import conda_rows

        rows += _done(conda_rows())
    if "latency" in parts and config.latency:
        from .latency import latency_rows

        rows += _done(latency_rows())
    if "conformance" in parts:
        from .conformance import conformance_rows

        rows += _done(conformance_rows(sample=5 if config is SMALL else None))
    if "pywren" in parts and config.pywren:
        from .pywren import pywren_rows

        rows += _done(pywren_rows(config))
    return rows


def _done(rows: list[Row]) -> list[Row]:
    """Show each part's rows as soon as it ends: a long full run may be cut short."""
    print(table(rows), file=sys.stderr, flush=True)
    return rows


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform(terse=True)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--small", action="store_true", help="the CI configuration")
    parser.add_argument("--only", nargs="+", choices=PARTS + ON_REQUEST, default=list(PARTS))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--markdown", type=Path, help="also write a Markdown table here")
    args = parser.parse_args(argv)
    config = SMALL if args.small else FULL
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="knot-bench-") as tmp:
        rows = run_parts(config, tuple(args.only), Path(tmp))
    header = (
        f"knot benchmarks, {config.name} configuration, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {machine()}, {time.time() - started:.0f} s"
    )
    print(header)
    print(table(rows))
    if args.json:
        data = {"header": header, "config": config.name, "rows": [r.as_dict() for r in rows]}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(f"{header}\n\n{markdown(rows)}\n")
    missed = [r for r in rows if r.failed_assertion]
    for row in missed:
        print(f"MISSED: {row.section} / {row.metric} = {row.knot} ({row.target})", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
