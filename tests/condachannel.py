"""A conda channel made here, for tests: no conda channel is reachable from this machine.

It holds small real conda packages (info/index.json, info/paths.json, info/files and the
payload, in a .tar.bz2), indexed by py-rattler's indexer as any channel is: a command-line
tool ``knot-hello``, and ``knot-greet``, which depends on it and calls it through the
prefix the installer writes into it."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import io
import json
import os
import tarfile
from pathlib import Path

# conda-build's placeholder for the install prefix, rewritten by the installer.
PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
HELLO = b'#!/bin/sh\necho "hello from conda: $*"\n'
GREET = (
    f'#!/bin/sh\n# installed in {PLACEHOLDER}\nexec {PLACEHOLDER}/bin/knot-hello "greetings, $*"\n'
)
ACTIVATE = b"export KNOT_GREETING=activated\n"
# The base image's Python (Debian bookworm's), which the channel's `python` package wraps.
IMAGE_PYTHON = "/usr/bin/python3.11"
PYMOD = b'GREETING = "hello from a module only the environment has"\n'
SITE = "lib/python3.11/site-packages"


def conda_package(
    channel: Path,
    name: str,
    version: str,
    files: dict[str, tuple[bytes, int]],
    depends: tuple[str, ...] = (),
    subdir: str = "linux-64",
    links: dict[str, str] | None = None,
) -> Path:
    """One package (path -> (bytes, mode)), with symbolic links (path -> target); a file
    holding PLACEHOLDER is marked for the installer's text prefix rewriting, as
    conda-build marks it."""
    links = links or {}
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
    paths += [{"_path": path, "path_type": "softlink"} for path in sorted(links)]
    paths.sort(key=lambda entry: entry["_path"])
    folder = channel / subdir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}-{version}-0.tar.bz2"
    with tarfile.open(target, "w:bz2") as tar:
        _add(tar, "info/index.json", json.dumps(index).encode())
        _add(tar, "info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode())
        _add(tar, "info/files", "".join(f"{p}\n" for p in sorted({*files, *links})).encode())
        for path, (data, mode) in sorted(files.items()):
            _add(tar, path, data, mode)
        for path, target_path in sorted(links.items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target_path, 0o777
            tar.addfile(info)
    return target


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def add_python(channel: Path, interpreter: str = IMAGE_PYTHON) -> None:
    """``python`` 3.11 for environments that run Python scripts, and ``pip`` and
    ``knot-pymod`` (a module only the environment has) that need it.

    No conda channel is reachable here, and building CPython is not cheap, so this
    ``python`` wraps an interpreter the target already has (the base image's): its prefix
    is a venv, ``pyvenv.cfg`` naming the interpreter's folder and ``bin/python`` linking
    to it. Python then takes the prefix as ``sys.prefix``, with the prefix's own
    site-packages and nothing else installed next to the interpreter, as a real conda
    Python would. ``pip`` is a copy of this host's pip (pure Python), as conda-forge
    repackages pip's wheel."""
    cfg = f"home = {os.path.dirname(interpreter)}\ninclude-system-site-packages = false\n"
    links = {"bin/python": interpreter, "bin/python3": "python", "bin/python3.11": "python"}
    files = {"pyvenv.cfg": (cfg.encode(), 0o644)}
    conda_package(channel, "python", "3.11.0", files, links=links)
    conda_package(channel, "pip", _pip_version(), _pip_files(), depends=("python >=3.9",))
    pymod = {f"{SITE}/knot_pymod.py": (PYMOD, 0o644)}
    conda_package(channel, "knot-pymod", "1.0", pymod, depends=("python 3.11.*",))


def _pip_version() -> str:
    return importlib.metadata.version("pip")


def _pip_files() -> dict[str, tuple[bytes, int]]:
    """This host's pip: its package and dist-info, without compiled files."""
    dist = importlib.metadata.distribution("pip")
    files = {}
    for entry in dist.files or []:
        path = entry.as_posix()
        if path.startswith("..") or "__pycache__" in path or path.endswith(".pyc"):
            continue
        files[f"{SITE}/{path}"] = (Path(str(dist.locate_file(entry))).read_bytes(), 0o644)
    return files


def make_channel(channel: Path, python: bool = False) -> str:
    """The test channel at ``channel``, indexed; returns its URL (file://). With
    ``python``, it holds ``add_python``'s packages too."""
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
    if python:
        add_python(channel)
    (channel / "noarch").mkdir(exist_ok=True)
    from rattler.index import index_fs

    asyncio.run(index_fs(channel))
    return channel.resolve().as_uri()


def render_envs(workdir: Path, channel_url: str) -> None:
    """The workflow's envs/*.yaml.in with the test channel's URL in place of @CHANNEL@."""
    for template in workdir.rglob("*.yaml.in"):
        text = template.read_text().replace("@CHANNEL@", channel_url)
        template.with_suffix("").write_text(text)
