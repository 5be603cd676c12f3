"""The emulator's container registry: Debian's ``docker-registry`` (CNCF distribution 2.x)
run as a child of the serve process, and the bridge that makes its pushes visible to moto's
ECR.

On AWS, ECR *is* the registry: a ``docker push`` to the repository URI shows up in
DescribeImages at once. moto's ECR has no registry behind it, so the emulator runs a real one
and listens to its webhook notifications: each manifest push is copied into moto's ECR
backend with ``put_image`` (tag, manifest and the registry's own digest).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import yaml

from ..errors import ConfigError

log = logging.getLogger("knot.emulator.registry")

REGISTRY_BINARY = "docker-registry"
NOTIFY_PATH = "/registry-events"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# What docker pushes (schema 2 and OCI, single images and lists). Blob pushes arrive as
# application/octet-stream and are ignored.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


def registry_binary() -> str:
    """The path of docker-registry; installs Debian's package when missing and root."""
    found = shutil.which(REGISTRY_BINARY) or _existing("/usr/bin/docker-registry")
    if found:
        return found
    if os.geteuid() != 0:
        raise ConfigError(
            "The knot emulator needs a local container registry, and 'docker-registry' is "
            "not installed. Install it (as root: apt-get install docker-registry) and run "
            "'knot emulator start' again."
        )
    _apt_install("docker-registry")
    found = shutil.which(REGISTRY_BINARY) or _existing("/usr/bin/docker-registry")
    if not found:
        raise ConfigError("apt-get installed docker-registry, but no binary was found.")
    return found


def _existing(path: str) -> str | None:
    return path if os.access(path, os.X_OK) else None


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ConfigError(
                f"Could not install {package} ({' '.join(cmd)} failed): "
                f"{done.stderr.strip()[-500:]}"
            )


def registry_config(storage_dir: Path, port: int, notify_url: str) -> dict:
    """docker-registry's configuration: filesystem storage (so images survive emulator
    restarts), 127.0.0.1 only, and a webhook for every push."""
    return {
        "version": "0.1",
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
        "notifications": {
            "endpoints": [
                {
                    "name": "knot-emulator",
                    "url": notify_url,
                    "timeout": "5s",
                    "threshold": 3,
                    "backoff": "1s",
                    "ignoredmediatypes": ["application/octet-stream"],
                }
            ]
        },
    }


def start_registry(state_dir: Path, port: int, notify_url: str) -> subprocess.Popen:
    """Start docker-registry as a child process and wait until it answers."""
    binary = registry_binary()
    storage = state_dir / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    config_path = state_dir / "registry.yml"
    config_path.write_text(yaml.safe_dump(registry_config(storage, port, notify_url)))
    logfile = open(state_dir / "registry.log", "ab")  # noqa: SIM115 (the child keeps it)
    proc = subprocess.Popen(
        [binary, "serve", str(config_path)],
        stdin=subprocess.DEVNULL,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    logfile.close()
    _wait_for_registry(f"127.0.0.1:{port}", proc, state_dir / "registry.log")
    return proc


def _die_with_parent() -> None:
    """In the registry's child process before exec: ask Linux to SIGTERM it when the serve
    process dies, even by SIGKILL, so no registry outlives its emulator."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_for_registry(address: str, proc: subprocess.Popen, logfile: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-1500:]
            raise ConfigError(f"docker-registry exited at start ({proc.returncode}):\n{tail}")
        if registry_answers(address):
            return
        time.sleep(0.1)
    proc.terminate()
    raise ConfigError(f"docker-registry did not answer on {address} within 20 s.")


def registry_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def fetch_manifest(address: str, repository: str, reference: str) -> tuple[str, str, str]:
    """(manifest text, media type, digest) of ``repository:reference`` in the registry."""
    request = urllib.request.Request(
        f"http://{address}/v2/{repository}/manifests/{reference}",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
        media_type = response.headers.get("Content-Type", "").split(";")[0]
        digest = response.headers.get("Docker-Content-Digest", "")
    return body, media_type, digest


def list_tags(address: str, repository: str) -> list[str]:
    """Tags the registry holds for a repository; none when it has never been pushed."""
    try:
        with urllib.request.urlopen(
            f"http://{address}/v2/{repository}/tags/list", timeout=10
        ) as response:
            return json.load(response).get("tags") or []
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise


def pushed_manifests(envelope: dict) -> Iterable[tuple[str, str, str]]:
    """(repository, tag, digest) of each tagged manifest push in a notification envelope."""
    for event in envelope.get("events", []):
        target = event.get("target", {})
        if (
            event.get("action") == "push"
            and target.get("mediaType") in MANIFEST_TYPES
            and target.get("tag")
        ):
            yield target["repository"], target["tag"], target.get("digest", "")


PushHandler = Callable[[str, str, str], None]


def notification_server(on_push: PushHandler) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 (free port) that receives the registry's webhooks and
    calls ``on_push(repository, tag, digest)`` for each tagged manifest push. The caller
    runs ``serve_forever`` (see ``serve_in_thread``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                envelope = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self.send_response(400)
                self.end_headers()
                return
            for repository, tag, digest in pushed_manifests(envelope):
                try:
                    on_push(repository, tag, digest)
                except (OSError, ValueError) as exc:
                    # Answer 200 all the same: the registry would retry a failure forever.
                    log.warning("could not import %s:%s into ECR: %s", repository, tag, exc)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args) -> None:
            log.debug(format, *args)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def serve_in_thread(server: ThreadingHTTPServer) -> Thread:
    thread = Thread(target=server.serve_forever, name="knot-registry-events", daemon=True)
    thread.start()
    return thread
