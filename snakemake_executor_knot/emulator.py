"""``knot emulator``: AWS on one machine, for running and testing knot without an account.

``start`` launches a detached serve process (``python -m snakemake_executor_knot.emulator
serve``) that runs moto's server on 127.0.0.1 with knot's fidelity fixes
(``emulator_patches``) and a local container registry standing in for ECR
(``emulator_registry``), then records endpoint, registry, pids and base image in
``$KNOT_HOME/emulator.json`` (default ``~/.knot``). ``--knot-emulator`` reads that file.
moto's Batch runs each job as a Docker container with host networking, so a job reaches
the same endpoint at 127.0.0.1. State lives in the serve process and survives between
Snakemake runs; registry images live on disk and survive restarts.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .errors import ConfigError

DEFAULT_PORT = 5100  # moto; the registry listens on the next port
REGION = "us-east-1"
SERVE_MODULE = "snakemake_executor_knot.emulator"
NOT_RUNNING = "the knot emulator is not running: run `knot emulator start`"

log = logging.getLogger("knot.emulator")


# --- where things live ------------------------------------------------------------------


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


# --- the state file -----------------------------------------------------------------------


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
    if not _serve_alive(state):
        raise ConfigError(f"{NOT_RUNNING} (stale state in {state_path()})")
    return state


def emulator_endpoint() -> str:
    return emulator_state()["endpoint"]


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


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise start and stop, so two concurrent starts end up sharing one emulator."""
    knot_home().mkdir(parents=True, exist_ok=True)
    with open(knot_home() / "emulator.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- processes, by pid and only ours ----------------------------------------------------


def process_alive(pid: int | None, *markers: str) -> bool:
    """True if ``pid`` runs (not a zombie) and its command line contains every marker, so a
    recycled pid is never mistaken for ours."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and all(m in cmdline for m in markers)


def _serve_alive(state: dict) -> bool:
    return process_alive(state["pids"]["server"], SERVE_MODULE, state["state_dir"])


def _registry_alive(state: dict) -> bool:
    return process_alive(state["pids"]["registry"], "docker-registry", state["state_dir"])


def _end(pid: int, alive, timeout: float) -> None:
    """SIGTERM, wait for ``alive()`` to turn false, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                return
            time.sleep(0.1)


# --- start, stop, status ------------------------------------------------------------------


def start(port: int = DEFAULT_PORT, timeout: float = 60.0) -> tuple[dict, bool]:
    """Start the emulator unless one runs; returns (state, whether it was started)."""
    from .emulator_registry import registry_binary

    with _locked():
        state = read_state()
        if state and _serve_alive(state):
            return state, False
        if state:
            _clean_up(state)
        registry_binary()  # fails early, with a clear message, when none can be had
        directory = state_dir()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ready.json").unlink(missing_ok=True)
        proc = _launch(port, directory)
        state = build_state(_wait_ready(proc, directory, timeout), directory)
        _write_json(state_path(), state)
        return state, True


def stop(timeout: float = 20.0) -> dict | None:
    """Stop the emulator this state file names (only its own processes); returns the old
    state, or None if there was none."""
    with _locked():
        try:
            state = read_state()
        except ConfigError:
            state_path().unlink()  # damaged: it names no process we could stop
            return None
        if state is not None:
            _clean_up(state, timeout)
        return state


def _clean_up(state: dict, timeout: float = 20.0) -> None:
    if _serve_alive(state):
        _end(state["pids"]["server"], lambda: _serve_alive(state), timeout)
    if _registry_alive(state):  # left behind only if the serve process was killed
        _end(state["pids"]["registry"], lambda: _registry_alive(state), 5.0)
    state_path().unlink(missing_ok=True)


def _launch(port: int, directory: Path) -> subprocess.Popen:
    registry_port = port + 1 if port else 0
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_ENDPOINT_URL")}
    cmd = [sys.executable, "-m", SERVE_MODULE, "serve", "--port", str(port)]
    cmd += ["--registry-port", str(registry_port), "--state-dir", str(directory)]
    with open(directory / "emulator.log", "ab") as logfile:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=env,
            start_new_session=True,  # detached: outlives the `knot` command that started it
        )


def _wait_ready(proc: subprocess.Popen, directory: Path, timeout: float) -> dict:
    ready = directory / "ready.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return json.loads(ready.read_text())
        if proc.poll() is not None:
            raise ConfigError(
                f"The knot emulator failed to start (exit {proc.returncode}). Its log "
                f"({directory / 'emulator.log'}) ends with:\n{_log_tail(directory)}"
            )
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise ConfigError(
        f"The knot emulator did not come up within {timeout:.0f} s; see "
        f"{directory / 'emulator.log'}:\n{_log_tail(directory)}"
    )


def _log_tail(directory: Path, lines: int = 20) -> str:
    try:
        text = (directory / "emulator.log").read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def base_image_present(name: str) -> bool | None:
    """Whether the Docker engine has the image; None when the engine cannot be asked."""
    import docker
    import docker.errors

    try:
        docker.from_env().images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException:
        return None


# --- the serve process ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_port(port: int, what: str) -> None:
    # ThreadedMotoServer waits forever when its thread cannot bind, so check first.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(
                f"Port {port} for the emulator's {what} is in use ({exc.strerror}). Pick "
                "another with `knot emulator start --port N` (0 picks free ports)."
            ) from exc


def serve(port: int, registry_port: int, directory: Path) -> int:
    """Run moto and the registry until SIGTERM/SIGINT. Writes ready.json when both answer."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port, registry_port = port or free_port(), registry_port or free_port()
    _check_port(port, "AWS endpoint")
    _check_port(registry_port, "registry")
    # moto reads these when a job runs: containers share the host's network (there is no
    # bridge on the machines knot targets), and MOTO_PORT is passed into each container.
    os.environ["MOTO_DOCKER_NETWORK_MODE"] = "host"
    os.environ["MOTO_PORT"] = str(port)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    with _running(port, registry_port, directory) as registry_proc:
        _write_json(directory / "ready.json", _ready(port, registry_port, registry_proc.pid))
        log.info("emulator ready on 127.0.0.1:%s, registry 127.0.0.1:%s", port, registry_port)
        while not stopping.wait(0.5):
            if registry_proc.poll() is not None:
                log.error("docker-registry exited (%s); stopping", registry_proc.returncode)
                return 1
    return 0


def _ready(port: int, registry_port: int, registry_pid: int) -> dict:
    return {
        "port": port,
        "registry_port": registry_port,
        "pid": os.getpid(),
        "registry_pid": registry_pid,
    }


@contextlib.contextmanager
def _running(port: int, registry_port: int, directory: Path) -> Iterator[subprocess.Popen]:
    from moto.server import ThreadedMotoServer

    from . import emulator_patches, emulator_registry

    label = str(os.getpid())
    emulator_patches.apply(
        emulator_patches.Fidelity(
            endpoint=f"http://127.0.0.1:{port}",
            registry=f"127.0.0.1:{registry_port}",
            label=label,
        )
    )
    events = emulator_registry.notification_server(emulator_patches.import_pushed_image)
    emulator_registry.serve_in_thread(events)
    notify_url = f"http://127.0.0.1:{events.server_address[1]}{emulator_registry.NOTIFY_PATH}"
    moto = ThreadedMotoServer("127.0.0.1", port, verbose=False)
    moto.start()
    registry_proc = emulator_registry.start_registry(directory, registry_port, notify_url)
    try:
        yield registry_proc
    finally:
        _shutdown(moto, events, registry_proc, label, directory)


def _shutdown(moto, events, registry_proc: subprocess.Popen, label: str, directory: Path) -> None:
    log.info("stopping")
    if registry_proc.poll() is None:
        registry_proc.terminate()
        try:
            registry_proc.wait(10)
        except subprocess.TimeoutExpired:
            registry_proc.kill()
    _remove_job_containers(label)
    moto.stop()
    events.shutdown()
    (directory / "ready.json").unlink(missing_ok=True)


def _remove_job_containers(label: str) -> None:
    """Remove containers of jobs still running: they belong to this emulator only."""
    import docker
    import docker.errors
    import requests

    from .emulator_patches import CONTAINER_LABEL

    try:
        client = docker.from_env()
        for container in client.containers.list(
            all=True, filters={"label": f"{CONTAINER_LABEL}={label}"}
        ):
            container.remove(force=True)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        log.warning("could not remove job containers: %s", exc)


# --- command line ------------------------------------------------------------------------------


def _cmd_start(args: argparse.Namespace) -> int:
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


def _cmd_stop(args: argparse.Namespace) -> int:
    state = stop()
    if state is None:
        print("The knot emulator is not running; nothing to stop.")
    else:
        print(f"Stopped the knot emulator at {state['endpoint']}.")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        state = emulator_state()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2))
    return 0


def _add_actions(actions, with_serve: bool = False) -> None:
    start_parser = actions.add_parser("start", help="start the emulator in the background")
    start_parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the AWS endpoint (default {DEFAULT_PORT}; the registry takes the "
        "next one); 0 picks free ports",
    )
    start_parser.set_defaults(handler=_cmd_start)
    actions.add_parser("stop", help="stop the emulator").set_defaults(handler=_cmd_stop)
    actions.add_parser("status", help="show the emulator's state").set_defaults(handler=_cmd_status)
    if with_serve:
        serve_parser = actions.add_parser("serve", help="run in the foreground (internal)")
        serve_parser.add_argument("--port", type=int, required=True)
        serve_parser.add_argument("--registry-port", type=int, default=0)
        serve_parser.add_argument("--state-dir", type=Path, required=True)
        serve_parser.set_defaults(
            handler=lambda a: serve(a.port, a.registry_port, a.state_dir.resolve())
        )


def register_cli(commands) -> None:
    """Add ``knot emulator start|stop|status`` to the ``knot`` command."""
    parser = commands.add_parser(
        "emulator", help="run AWS locally (moto, a registry and Docker) for knot"
    )
    _add_actions(parser.add_subparsers(dest="emulator_action", required=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m " + SERVE_MODULE)
    _add_actions(parser.add_subparsers(dest="action", required=True), with_serve=True)
    from .cli import dispatch

    return dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
