"""The emulated instance's input cache: on Batch the launch template makes a host folder
(runtime/cache.py's HOST_PATH) that every job definition mounts; here that bind mount
becomes one Docker volume per emulator, shared by all its job containers, so jobs use the
cache through the same code path. Like the launch template's boothook, the emulator
makes the volume knot's uid's before the first job mounts it."""

from __future__ import annotations

import threading
from typing import Any

import docker
from docker.types import Mount

from ...runtime.cache import HOST_PATH
from ...runtime.contract import KNOT_UID

_ready: set[str] = set()
_lock = threading.Lock()


def volume_name(label: str) -> str:
    return f"knot-cache-{label}"


def instance_mounts(mounts: list[dict], volume: str) -> list[dict]:
    """``mounts`` with the cache's host folder replaced by the volume (pure)."""
    swapped = []
    for mount in mounts:
        if mount.get("Type") == "bind" and mount.get("Source") == HOST_PATH:
            mount = Mount(
                mount["Target"], volume, type="volume", read_only=bool(mount.get("ReadOnly"))
            )
        swapped.append(mount)
    return swapped


def uses_cache(mounts: list[dict]) -> bool:
    return any(m.get("Source") == HOST_PATH for m in mounts)


def prepare(client: Any, image: str, volume: str, labels: dict[str, str]) -> None:
    """Create the volume (labelled as the job containers, so the emulator's shutdown
    removes it) and give it to knot's uid, once per emulator."""
    with _lock:
        if volume in _ready:
            return
        client.volumes.create(name=volume, labels=labels)
        client.containers.run(
            image,
            ["chown", f"{KNOT_UID}:{KNOT_UID}", "/cache"],
            user="0",
            mounts=[Mount("/cache", volume, type="volume")],
            network_mode="host",
            remove=True,
            labels=labels,
        )
        _ready.add(volume)


def remove_volumes(label_filter: str) -> None:
    """Remove the cache volumes of an emulator that is shutting down."""
    client = docker.from_env()
    for volume in client.volumes.list(filters={"label": label_filter}):
        volume.remove(force=True)
