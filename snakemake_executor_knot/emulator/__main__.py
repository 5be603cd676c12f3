"""The serve process: ``python -m snakemake_executor_knot.emulator serve ...``, started in the
background by ``knot emulator start``. Its output goes to the emulator's log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError

from .server import serve
from .state import SERVE_MODULE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {SERVE_MODULE}")
    actions = parser.add_subparsers(dest="action", required=True)
    serve_parser = actions.add_parser("serve", help="run moto and the registry in the foreground")
    serve_parser.add_argument("--port", type=int, required=True)
    serve_parser.add_argument("--registry-port", type=int, default=0)
    serve_parser.add_argument("--state-dir", type=Path, required=True)
    serve_parser.add_argument("--stop-with", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        return serve(args.port, args.registry_port, args.state_dir.resolve(), args.stop_with)
    except WorkflowError as exc:
        print(f"knot: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
