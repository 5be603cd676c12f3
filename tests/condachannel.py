"""A conda channel made here, for tests: no conda channel is reachable from this machine.

It holds small real conda packages (info/index.json, info/paths.json, info/files and the
payload, in a .tar.bz2), indexed by py-rattler's indexer as any channel is: a command-line
tool ``knot-hello``, and ``knot-greet``, which depends on it and calls it through the
prefix the installer writes into it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from pathlib import Path

# conda-build's placeholder for the install prefix, rewritten by the installer.
PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
HELLO = b'#!/bin/sh\necho "hello from conda: $*"\n'
GREET = (
    f'#!/bin/sh\n# installed in {PLACEHOLDER}\nexec {PLACEHOLDER}/bin/knot-hello "greetings, $*"\n'
)
ACTIVATE = b"export KNOT_GREETING=activated\n"


def conda_package(
    channel: Path,
    name: str,
    version: str,
    files: dict[str, tuple[bytes, int]],
    depends: tuple[str, ...] = (),
    subdir: str = "linux-64",
) -> Path:
    """One package (path -> (bytes, mode)); a file holding PLACEHOLDER is marked for the
    installer's text prefix rewriting, as conda-build marks it."""
    index = {
        "name": name,
        "version": version,
        "build": "0",
        "build_number": 0,
        "depends": list(depends),
        "subdir": subdir,
        "platform": "linux",
        "arch": "x86_64",
        "license": "MIT",
        "timestamp": 1700000000000,
    }
    paths = []
    for path, (data, _mode) in sorted(files.items()):
        entry = {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
        }
        if PLACEHOLDER.encode() in data:
            entry.update(prefix_placeholder=PLACEHOLDER, file_mode="text")
        paths.append(entry)
    folder = channel / subdir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}-{version}-0.tar.bz2"
    with tarfile.open(target, "w:bz2") as tar:
        _add(tar, "info/index.json", json.dumps(index).encode())
        _add(tar, "info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode())
        _add(tar, "info/files", "".join(f"{p}\n" for p in sorted(files)).encode())
        for path, (data, mode) in sorted(files.items()):
            _add(tar, path, data, mode)
    return target


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def make_channel(channel: Path) -> str:
    """The test channel at ``channel``, indexed; returns its URL (file://)."""
    conda_package(channel, "knot-hello", "1.0", {"bin/knot-hello": (HELLO, 0o755)})
    conda_package(
        channel,
        "knot-greet",
        "2.0",
        {
            "bin/knot-greet": (GREET.encode(), 0o755),
            "etc/conda/activate.d/knot-greet.sh": (ACTIVATE, 0o644),
        },
        depends=("knot-hello >=1",),
    )
    (channel / "noarch").mkdir(exist_ok=True)
    from rattler.index import index_fs

    asyncio.run(index_fs(channel))
    return channel.resolve().as_uri()


def render_envs(workdir: Path, channel_url: str) -> None:
    """The workflow's envs/*.yaml.in with the test channel's URL in place of @CHANNEL@."""
    for template in workdir.rglob("*.yaml.in"):
        text = template.read_text().replace("@CHANNEL@", channel_url)
        template.with_suffix("").write_text(text)
