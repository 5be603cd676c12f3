"""``knot emulator start|stop|status``: AWS on this machine, for running knot without an
account."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config.settings import KnotConfig
from ..emulator.faults import (
    FAULTS_FILE,
    Switches,
    read_injected,
    read_switches,
    write_switches,
)
from ..emulator.server import DEFAULT_PORT, base_image_present, start, stop
from ..emulator.state import emulator_state, process_start, state_path
from ..errors import ConfigError


def _start(args: argparse.Namespace, config: KnotConfig) -> int:
    if args.stop_with is not None and process_start(args.stop_with) is None:
        raise ConfigError(
            f"--stop-with {args.stop_with}: no such process runs. Give the pid of a running "
            "process (a test session, say) whose end should stop the emulator."
        )
    state, started = start(args.port, stop_with=args.stop_with)
    if not started:
        print(f"The knot emulator is already running at {state['endpoint']}; nothing to do.")
        return 0
    print(f"The knot emulator is running at {state['endpoint']}")
    print(f"  registry:   {state['registry']}")
    print(f"  base image: {state['base_image']}")
    print(f"  state:      {state_path()}")
    if base_image_present(state["base_image"]) is False:
        print(
            f"Note: the base image {state['base_image']} is not in the local Docker engine; "
            "make it with scripts/ensure-base-image."
        )
    return 0


def _stop(args: argparse.Namespace, config: KnotConfig) -> int:
    state = stop()
    if state is None:
        print("The knot emulator is not running; nothing to stop.")
    else:
        print(f"Stopped the knot emulator at {state['endpoint']}.")
    return 0


def _status(args: argparse.Namespace, config: KnotConfig) -> int:
    try:
        state = emulator_state()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2))
    return 0


def _faults(args: argparse.Namespace, config: KnotConfig) -> int:
    folder = Path(emulator_state()["state_dir"])
    if args.clear or args.s3_errors is not None or args.throttle or args.kill or args.reclaim:
        try:
            switches = Switches(
                s3_error_share=args.s3_errors or 0.0,
                s3_error_status=args.s3_status,
                throttle=dict(_counted("--throttle", item) for item in args.throttle),
                seed=args.seed,
                kill=dict(_counted("--kill", item) for item in args.kill),
                reclaim=dict(_counted("--reclaim", item) for item in args.reclaim),
                strike_after=args.after,
            )
        except ValueError as exc:
            raise ConfigError(f"knot emulator faults: {exc}.") from exc
        write_switches(folder, switches)
    print(
        json.dumps(
            {
                "switches": vars(read_switches(folder / FAULTS_FILE)),
                "injected": read_injected(folder),
            },
            indent=2,
        )
    )
    return 0


_EXAMPLES = {
    "--throttle": "OPERATION=N, e.g. batch.SubmitJob=3",
    "--kill": "GLOB=N, e.g. 'fit-*=1'",
}


def _counted(flag: str, item: str) -> tuple[str, int]:
    """'NAME=N' of a repeatable switch; a job glob alone counts once."""
    name, sep, count = item.rpartition("=") if "=" in item else (item, "", "1")
    if (sep and not count.isdigit()) or not name:
        example = _EXAMPLES.get(flag, _EXAMPLES["--kill"])
        raise ValueError(f"{flag} wants {example}, not '{item}'")
    return name, int(count)


def _add_faults(actions) -> None:
    faults = actions.add_parser(
        "faults", help="make the emulator fail some requests, as AWS does under load"
    )
    faults.add_argument(
        "--s3-errors",
        type=float,
        metavar="SHARE",
        help="fail this share (0-1) of S3 requests (default: none)",
    )
    faults.add_argument(
        "--s3-status",
        type=int,
        default=503,
        choices=(500, 503),
        help="HTTP status of S3 faults (default 503)",
    )
    faults.add_argument(
        "--throttle",
        action="append",
        default=[],
        metavar="OP=N",
        help="refuse the next N calls of OP (e.g. batch.SubmitJob=3); repeatable (default: none)",
    )
    faults.add_argument(
        "--kill",
        action="append",
        default=[],
        metavar="GLOB[=N]",
        help="kill the containers of the next N (default 1) jobs whose Batch job name matches "
        "GLOB (SIGKILL: exit code 137, not retried); repeatable (default: none)",
    )
    faults.add_argument(
        "--reclaim",
        action="append",
        default=[],
        metavar="GLOB[=N]",
        help="end the next N attempts of matching jobs as a spot reclaim ('Host EC2 (instance "
        "i-...) terminated.'); the job definition's retryStrategy decides on a retry "
        "(default: none)",
    )
    faults.add_argument(
        "--after",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long a killed or reclaimed container runs first (default 2)",
    )
    faults.add_argument("--seed", type=int, help="seed of the S3 fault draws (default: random)")
    faults.add_argument(
        "--clear", action="store_true", help="inject nothing (default: keep what is not replaced)"
    )
    faults.set_defaults(handler=_faults)


def register(commands) -> None:
    """Add ``knot emulator start|stop|status`` to the ``knot`` command."""
    parser = commands.add_parser(
        "emulator", help="run AWS locally (moto, a registry and Docker) for knot"
    )
    actions = parser.add_subparsers(dest="emulator_action", required=True)
    start_parser = actions.add_parser("start", help="start the emulator in the background")
    start_parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the AWS endpoint (default {DEFAULT_PORT}; the registry takes the "
        "next one); 0 picks free ports",
    )
    start_parser.add_argument(
        "--stop-with",
        type=int,
        metavar="PID",
        help="stop the emulator by itself when process PID ends (a test session, say); "
        "an emulator already running is left as it is (default: none, it runs until "
        "'knot emulator stop')",
    )
    start_parser.set_defaults(handler=_start)
    actions.add_parser("stop", help="stop the emulator").set_defaults(handler=_stop)
    actions.add_parser("status", help="show the emulator's state").set_defaults(handler=_status)
    _add_faults(actions)
