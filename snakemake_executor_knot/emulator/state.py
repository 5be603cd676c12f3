"""Where the running emulator is: its state file, read without loading moto or the server.

``aws.clients`` and ``plan`` read it for ``--knot-emulator``; ``server`` writes it. It lives in
``$KNOT_HOME/emulator.json`` (default ``~/.knot``).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ConfigError

REGION = "us-east-1"
# The serve process runs as `python -m <SERVE_MODULE> serve ...`; its command line must hold
# this name, so that a recycled pid is never taken for the emulator.
SERVE_MODULE = "snakemake_executor_knot.emulator"
NOT_RUNNING = "the knot emulator is not running: run `knot emulator start`"


def knot_home() -> Path:
    return Path(os.environ.get("KNOT_HOME") or Path.home() / ".knot").expanduser().resolve()


def state_path() -> Path:
    return knot_home() / "emulator.json"


def state_dir() -> Path:
    """Logs, the registry's config and its image storage."""
    return knot_home() / "emulator"


def base_image_name(version: tuple[int, int] | None = None) -> str:
    """The image scripts/ensure-base-image makes: Debian's python3 for this major.minor."""
    major, minor = version or sys.version_info[:2]
    return f"knot-base:py{major}.{minor}"


def read_state() -> dict | None:
    """The state file as written, without checking that the emulator still runs."""
    try:
        return json.loads(state_path().read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{state_path()} is damaged ({exc}). Run `knot emulator stop` and start again."
        ) from exc


def emulator_state() -> dict:
    """The running emulator's state; ConfigError when none runs."""
    state = read_state()
    if state is None:
        raise ConfigError(NOT_RUNNING)
    if not serve_alive(state):
        raise ConfigError(f"{NOT_RUNNING} (stale state in {state_path()})")
    return state


def process_alive(pid: int | None, *markers: str) -> bool:
    """True if ``pid`` runs (not a zombie) and its command line contains every marker, so a
    recycled pid is never mistaken for ours."""
    if not pid or process_start(pid) is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return all(m in cmdline for m in markers)


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), so a recycled pid reads as another
    process; None when it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def emulator_endpoint() -> str:
    return emulator_state()["endpoint"]


def serve_alive(state: dict) -> bool:
    return process_alive(state["pids"]["server"], SERVE_MODULE, state["state_dir"])


def build_state(ready: dict, directory: Path) -> dict:
    """The state file's content from what the serve process reported when ready."""
    return {
        "endpoint": f"http://127.0.0.1:{ready['port']}",
        "registry": f"127.0.0.1:{ready['registry_port']}",
        "region": REGION,
        "base_image": base_image_name(),
        "pids": {"server": ready["pid"], "registry": ready["registry_pid"]},
        "state_dir": str(directory),
        "log": str(directory / "emulator.log"),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
