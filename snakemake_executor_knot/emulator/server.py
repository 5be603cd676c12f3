"""The emulator's processes: start, stop, and the serve process itself.

``start`` launches a detached serve process (``python -m snakemake_executor_knot.emulator
serve``) that runs moto's server on 127.0.0.1 with knot's fidelity fixes (``patches``) and a
local container registry standing in for ECR (``registry``), then records endpoint, registry,
pids and base image in the state file (``state``). ``--knot-emulator`` reads that file.
moto's Batch runs each job as a Docker container with host networking, so a job reaches
the same endpoint at 127.0.0.1. State lives in the serve process and survives between
Snakemake runs; registry images live on disk and survive restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
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
from pathlib import Path

import docker
import docker.errors
import requests

from ..errors import ConfigError
from . import registry
from .patches import instance
from .state import (
    SERVE_MODULE,
    build_state,
    knot_home,
    process_alive,
    process_start,
    read_state,
    serve_alive,
    state_dir,
    state_path,
    write_json,
)

DEFAULT_PORT = 5100  # moto; the registry listens on the next port
INSTALL_MOTO = (
    "The knot emulator needs moto, which is not installed. Install it with: "
    "pip install 'snakemake-executor-plugin-knot[emulator]'"
)

log = logging.getLogger("knot.emulator")


# --- the state file -----------------------------------------------------------------------


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise start and stop, so two concurrent starts end up sharing one emulator."""
    knot_home().mkdir(parents=True, exist_ok=True)
    with open(knot_home() / "emulator.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- processes, by pid and only ours ----------------------------------------------------


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


def start(
    port: int = DEFAULT_PORT, timeout: float = 60.0, stop_with: int | None = None
) -> tuple[dict, bool]:
    """Start the emulator unless one runs; returns (state, whether it was started). With
    ``stop_with``, an emulator started here stops by itself when that process ends."""
    if importlib.util.find_spec("moto") is None:
        raise ConfigError(INSTALL_MOTO)
    with _locked():
        state = read_state()
        if state and serve_alive(state):
            return state, False
        if state:
            _clean_up(state)
        registry.registry_binary()  # fails early, with a clear message, when none can be had
        directory = state_dir()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ready.json").unlink(missing_ok=True)
        proc = _launch(port, directory, stop_with)
        state = build_state(_wait_ready(proc, directory, timeout), directory)
        write_json(state_path(), state)
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
    if serve_alive(state):
        _end(state["pids"]["server"], lambda: serve_alive(state), timeout)
    if _registry_alive(state):  # left behind only if the serve process was killed
        _end(state["pids"]["registry"], lambda: _registry_alive(state), 5.0)
    state_path().unlink(missing_ok=True)


def _launch(port: int, directory: Path, stop_with: int | None) -> subprocess.Popen:
    registry_port = port + 1 if port else 0
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_ENDPOINT_URL")}
    cmd = [sys.executable, "-m", SERVE_MODULE, "serve", "--port", str(port)]
    cmd += ["--registry-port", str(registry_port), "--state-dir", str(directory)]
    if stop_with:
        cmd += ["--stop-with", str(stop_with)]
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


def serve(port: int, registry_port: int, directory: Path, stop_with: int | None = None) -> int:
    """Run moto and the registry until SIGTERM/SIGINT, or until the process ``stop_with``
    ends. Writes ready.json when both answer."""
    owner = Owner(stop_with) if stop_with else None
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
        write_json(directory / "ready.json", _ready(port, registry_port, registry_proc.pid))
        log.info("emulator ready on 127.0.0.1:%s, registry 127.0.0.1:%s", port, registry_port)
        while not stopping.wait(0.5):
            if registry_proc.poll() is not None:
                log.error("docker-registry exited (%s); stopping", registry_proc.returncode)
                return 1
            if owner is not None and owner.gone():
                log.info("process %s, which this emulator serves, ended; stopping", owner.pid)
                return 0
    return 0


class Owner:
    """The process an emulator stops with (a test session, say): it is gone when its pid no
    longer runs, or runs a process that started at another time (a recycled pid)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.started = pid, process_start(pid)

    def gone(self) -> bool:
        return self.started is None or process_start(self.pid) != self.started


def _ready(port: int, registry_port: int, registry_pid: int) -> dict:
    return {
        "port": port,
        "registry_port": registry_port,
        "pid": os.getpid(),
        "registry_pid": registry_pid,
    }


@contextlib.contextmanager
def _running(port: int, registry_port: int, directory: Path) -> Iterator[subprocess.Popen]:
    # moto is heavy and optional (the 'emulator' extra): only the serve process loads it.
    from moto.server import ThreadedMotoServer

    from .patches.batch import CONTAINER_LABEL
    from .patches.ecr import import_pushed_image
    from .patches.fidelity import Fidelity
    from .patches.install import apply

    label = f"{CONTAINER_LABEL}={os.getpid()}"
    apply(
        Fidelity(
            endpoint=f"http://127.0.0.1:{port}",
            registry=f"127.0.0.1:{registry_port}",
            label=str(os.getpid()),
            state_dir=directory,
        )
    )
    events = registry.notification_server(import_pushed_image)
    registry.serve_in_thread(events)
    notify_url = f"http://127.0.0.1:{events.server_address[1]}{registry.NOTIFY_PATH}"
    moto = ThreadedMotoServer("127.0.0.1", port, verbose=False)
    moto.start()
    registry_proc = registry.start_registry(directory, registry_port, notify_url)
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
    try:
        client = docker.from_env()
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        instance.remove_volumes(label)  # the emulated instance's input cache
    except (docker.errors.DockerException, requests.RequestException) as exc:
        log.warning("could not remove job containers: %s", exc)
