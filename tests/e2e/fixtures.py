"""pytest plugin with the session fixtures of end-to-end tests: a Docker engine, the base
image and a running knot emulator; tests/conftest.py imports them.

A tier that cannot run must fail the run, so a missing engine or image is a failure, never
a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from snakemake_executor_knot.emulator.state import emulator_state

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def run_script(name: str, timeout: float, env: dict | None = None) -> str:
    """Run scripts/<name>; its stdout, or a test failure carrying its stderr."""
    try:
        done = subprocess.run(
            [str(SCRIPTS / name)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/{name} did not finish within {timeout:.0f} s", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/{name} failed:\n{done.stderr.strip()}", pytrace=False)
    return done.stdout.strip()


def emulator_cli(*args: str, knot_home: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    """``knot emulator <args>`` with KNOT_HOME set."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake_executor_knot.cli", "emulator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KNOT_HOME": str(knot_home)},
        stdin=subprocess.DEVNULL,
    )


def start_emulator(knot_home: Path) -> dict:
    """Start an emulator on free ports under ``knot_home``; its state, plus knot_home. It
    stops by itself when this test process ends, however it ends."""
    done = emulator_cli(
        "start", "--port", "0", "--stop-with", str(os.getpid()), knot_home=knot_home
    )
    if done.returncode != 0:
        pytest.fail(f"knot emulator start failed:\n{done.stderr}", pytrace=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KNOT_HOME", str(knot_home))
        state = emulator_state()
    return {**state, "knot_home": str(knot_home)}


def stop_emulator(knot_home: Path) -> None:
    done = emulator_cli("stop", knot_home=knot_home)
    if done.returncode != 0:
        pytest.fail(f"knot emulator stop failed:\n{done.stderr}", pytrace=False)


def boto_client(state: dict, service: str):
    """A boto3 client for the emulator in ``state``, with its dummy credentials."""
    return boto3.client(
        service,
        endpoint_url=state["endpoint"],
        region_name=state["region"],
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _stop_dockerd(pid: int, timeout: float = 30) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker engine that answers. If scripts/ensure-docker had to start dockerd, that
    dockerd (and only it) is stopped at the end of the session, or by scripts/stop-with
    when the session is killed first."""
    pid = run_script("ensure-docker", timeout=600, env={"KNOT_STOP_WITH": str(os.getpid())})
    yield
    if pid.isdigit():
        _stop_dockerd(int(pid))


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:
    """The local base image for rule images (knot-base:py<major.minor>)."""
    output = run_script("ensure-base-image", timeout=900, env={"KNOT_PYTHON": sys.executable})
    return output.splitlines()[-1]


@pytest.fixture(scope="session")
def emulator(docker_engine, base_image, tmp_path_factory):
    """A running emulator (free ports, its own KNOT_HOME) for the whole session. Yields its
    state: endpoint, registry, region, base_image, pids, knot_home."""
    knot_home = tmp_path_factory.mktemp("knot-home")
    state = start_emulator(knot_home)
    try:
        yield {**state, "base_image": base_image}
    finally:
        stop_emulator(knot_home)


@pytest.fixture
def emulator_env(emulator, monkeypatch, tmp_path) -> dict:
    """The environment for talking to the session emulator, set in os.environ so that
    subprocesses (``snakemake --executor knot --knot-emulator``) inherit it: KNOT_HOME,
    dummy credentials, region, and AWS_ENDPOINT_URL for boto3 users such as the S3 storage
    plugin. No real AWS configuration is read."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "KNOT_HOME": emulator["knot_home"],
        "AWS_ENDPOINT_URL": emulator["endpoint"],
        "AWS_DEFAULT_REGION": emulator["region"],
        "AWS_REGION": emulator["region"],
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        **DUMMY_CREDENTIALS,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def faults(emulator, emulator_env):
    """``knot emulator faults <args>`` on the session emulator for one test, returning what
    it prints (switches and injected counts); cleared afterwards."""

    def set_faults(*args: str) -> dict:
        done = emulator_cli("faults", *args, knot_home=emulator["knot_home"])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    yield set_faults
    set_faults("--clear")
