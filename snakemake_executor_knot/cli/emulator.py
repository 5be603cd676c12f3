"""``knot emulator start|stop|status``: AWS on this machine, for running knot without an
account."""

from __future__ import annotations

import argparse
import json
import sys

from ..emulator.server import DEFAULT_PORT, base_image_present, start, stop
from ..emulator.state import emulator_state, state_path
from ..errors import ConfigError
from ..settings import KnotConfig


def _start(args: argparse.Namespace, config: KnotConfig) -> int:
    state, started = start(args.port)
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
    start_parser.set_defaults(handler=_start)
    actions.add_parser("stop", help="stop the emulator").set_defaults(handler=_stop)
    actions.add_parser("status", help="show the emulator's state").set_defaults(handler=_status)
