"""A conda environment's ``pip:`` lines pinned for knot.conda.lock.

The lines are resolved on the host by pip itself (a dry run that writes a JSON report), for
the environment's own Python and the image's platform, wheels only. Each distribution of
the closure then becomes ``name==version --hash=sha256:<wheel>``, so the image's pip runs
in its hash-checking mode and installs exactly the files the lock names, from whatever
index the build uses. Lines pip cannot pin that way (a package with no wheel, a local path,
a resolution that fails) stay as written, with one warning: the build installs them as
conda would, unpinned.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ..image.conda import GLIBC, CondaLayer

log = logging.getLogger("knot")

ARCHES = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}
OLDEST_GLIBC_MINOR = 17  # manylinux2014, the oldest tag wheels for current Pythons carry
PIP_TIMEOUT_S = 300
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Unpinnable(Exception):
    """Why the lines cannot be pinned; the lock keeps them as written."""


def pinned(layer: CondaLayer) -> CondaLayer:
    """``layer`` with its pip lines pinned, or as it is when they cannot be (one warning)."""
    options = index_options(layer.pip)
    if not layer.pip or all(" --hash=" in line or line in options for line in layer.pip):
        return layer
    try:
        return replace(layer, pip=pin_lines(layer))
    except Unpinnable as exc:
        log.warning(
            "knot: the pip: lines of the conda environment '%s' are locked as written, "
            "unpinned: %s. Its image installs whatever pip picks at build time.",
            layer.file,
            exc,
        )
        return layer


def pin_lines(layer: CondaLayer) -> tuple[str, ...]:
    """The closure of the layer's pip lines as pinned, hashed requirement lines."""
    version = python_version(layer)
    arch = ARCHES.get(layer.subdir)
    if version is None or arch is None:
        raise Unpinnable(f"no CPython for {layer.subdir} among its packages")
    with tempfile.TemporaryDirectory(prefix="knot-pip-") as folder:
        requirements, report = Path(folder) / "requirements.txt", Path(folder) / "report.json"
        requirements.write_text("".join(f"{line}\n" for line in layer.pip), encoding="utf-8")
        _resolve(requirements, report, version, arch)
        pins = pins_from_report(report.read_text(encoding="utf-8"))
    # Where the files come from still matters to the build's pip; what it installs is pinned.
    return (*index_options(layer.pip), *pins)


INDEX_OPTIONS = ("--index-url", "--extra-index-url", "-i", "--find-links", "-f")


def index_options(lines: tuple[str, ...]) -> tuple[str, ...]:
    """The lines that name an index or a folder of files (``--extra-index-url URL``)."""
    return tuple(line for line in lines if _option(line) in INDEX_OPTIONS)


def _option(line: str) -> str | None:
    words = line.split(maxsplit=1)
    return words[0].split("=")[0] if words and words[0].startswith("-") else None


def python_version(layer: CondaLayer) -> str | None:
    """The environment's CPython as ``major.minor``, from its ``python`` package's file."""
    for package in layer.packages:
        if package.name == "python":
            stem = package.file_name.removesuffix(".conda").removesuffix(".tar.bz2")
            match = re.match(r"(\d+)\.(\d+)(\.|$)", stem.rsplit("-", 2)[-2])
            return f"{match[1]}.{match[2]}" if match else None
    return None


def platform_tags(arch: str) -> list[str]:
    """Every manylinux tag the image's glibc runs (pip does not widen a given tag)."""
    newest = int(GLIBC.split(".")[1])
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, OLDEST_GLIBC_MINOR - 1, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def _resolve(requirements: Path, report: Path, version: str, arch: str) -> None:
    abi = "cp" + version.replace(".", "")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
    command += ["--quiet", "--disable-pip-version-check", "--only-binary=:all:"]
    command += ["--python-version", version, "--implementation", "cp"]
    command += ["--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in platform_tags(arch):
        command += ["--platform", tag]
    command += ["--report", str(report), "-r", str(requirements)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise Unpinnable(f"pip did not resolve them within {PIP_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise Unpinnable((errors or done.stderr.strip().splitlines() or ["pip failed"])[-1])


def pins_from_report(text: str) -> tuple[str, ...]:
    """``name==version --hash=sha256:...`` per distribution pip would install, sorted. The
    report is pip's output, but checked as any document read back: every field is
    validated before it reaches a requirements file."""
    try:
        installs = json.loads(text)["install"]
        pins = sorted(_pin(item) for item in installs)
    except (ValueError, KeyError, TypeError) as exc:
        raise Unpinnable(f"pip's report is not one this knot reads ({exc})") from exc
    if not pins:
        raise Unpinnable("pip's report names nothing to install")
    return tuple(pins)


def _pin(item: dict) -> str:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    sha256 = ((item["download_info"].get("archive_info") or {}).get("hashes") or {}).get("sha256")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"a distribution name {name!r}")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError(f"{name}'s version {version!r}")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise Unpinnable(f"{name} {version} comes from no archive with a SHA-256 (a path?)")
    return f"{name}=={version} --hash=sha256:{sha256}"


__all__ = ["index_options", "pinned", "pins_from_report", "platform_tags", "python_version"]
