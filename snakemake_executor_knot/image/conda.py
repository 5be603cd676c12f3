"""A rule's conda environment as a layer of its image (``conda:`` with
``--software-deployment-method conda``).

The environment file is solved on the host with py-rattler, a real conda solver and
installer that needs no conda installation (conda itself is not on PyPI, and micromamba
would have to be fetched as a binary from a conda channel). The solve gives an explicit
list: every package by URL and SHA-256. The host downloads each file, checks its SHA-256,
and installs the list into its own cache folder with every hard-coded prefix rewritten to
the image's fixed prefix ``/opt/knot/conda/<key>``; the image then copies that folder in
one layer. ``key`` hashes the explicit list and the pip lines, so rules with the same
environment share the layer and the host folder, and only a changed solve rebuilds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import shutil
import tarfile
import tempfile
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from ..errors import RuleError
from ..runtime.contract import CONDA_ROOT

# Snakemake's own default, and the channel conda-forge's docs give: an environment file
# without channels solves against it.
DEFAULT_CHANNELS = ("conda-forge",)
SUBDIRS = {"linux/amd64": "linux-64", "linux/arm64": "linux-aarch64"}
# What the solve may assume of the image: Linux, and the glibc of knot's Debian base.
GLIBC = "2.36"
# Fields of conda-meta records that name host folders: dropped from the image.
HOST_FIELDS = ("extracted_package_dir", "link")


@dataclass(frozen=True)
class CondaFile:
    """An environment file as read for one rule: what to solve."""

    rule: str
    path: str  # as the rule names it, for messages
    channels: tuple[str, ...]
    specs: tuple[str, ...]
    pip: tuple[str, ...] = ()


@dataclass(frozen=True)
class CondaPackage:
    url: str
    sha256: str

    @property
    def file_name(self) -> str:
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])

    @property
    def name(self) -> str:
        """The package's name: conda names a file ``<name>-<version>-<build>.<ext>``, and
        neither version nor build holds a '-'."""
        stem = self.file_name.removesuffix(".conda").removesuffix(".tar.bz2")
        return stem.rsplit("-", 2)[0]


@dataclass(frozen=True)
class CondaLayer:
    """A solved environment: what the image installs, and where."""

    file: str  # the environment file, for messages
    subdir: str
    packages: tuple[CondaPackage, ...]
    pip: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.explicit().encode())
        digest.update("".join(f"pip {line}\n" for line in self.pip).encode())
        return digest.hexdigest()[:24]

    @property
    def prefix(self) -> str:
        return f"{CONDA_ROOT}/{self.key}"

    @property
    def names(self) -> frozenset[str]:
        return frozenset(package.name for package in self.packages)

    def explicit(self) -> str:
        """conda's explicit list (``conda list --explicit --sha256``): the solve, exactly."""
        lines = ["@EXPLICIT", f"# platform: {self.subdir}"]
        lines += [f"{p.url}#{p.sha256}" for p in sorted(self.packages, key=lambda p: p.url)]
        return "\n".join(lines) + "\n"


# ---- reading the file


def read_conda_file(rule: str, path: str, text: str) -> CondaFile:
    """Parse an environment file; a RuleError naming the rule and the file when it is not
    one."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _file_error(rule, path, f"is not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise _file_error(rule, path, "is not a mapping with 'channels:' and 'dependencies:'")
    channels = _strings(rule, path, data.get("channels") or list(DEFAULT_CHANNELS), "channels")
    specs, pip = _dependencies(rule, path, data.get("dependencies"))
    if not specs:
        raise _file_error(rule, path, "lists no conda 'dependencies:'")
    # 'nodefaults' only tells conda to leave its default channels out; rattler has none.
    channels = [c for c in channels if c != "nodefaults"]
    return CondaFile(rule, path, tuple(channels), tuple(specs), tuple(pip))


def _dependencies(rule: str, path: str, items: object) -> tuple[list[str], list[str]]:
    if not isinstance(items, list):
        raise _file_error(rule, path, "has no 'dependencies:' list")
    specs, pip = [], []
    for item in items:
        if isinstance(item, dict) and set(item) == {"pip"}:
            pip += _strings(rule, path, item["pip"], "pip")
        elif isinstance(item, str | int | float) and str(item).strip():
            specs.append(str(item).strip())
        else:
            raise _file_error(rule, path, f"has a dependency knot cannot read: {item!r}")
    return specs, pip


def _strings(rule: str, path: str, value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _file_error(rule, path, f"has a '{what}:' that is not a list of names")
    return list(value)


def _file_error(rule: str, path: str, what: str) -> RuleError:
    return RuleError(
        f"Rule '{rule}': the conda environment file '{path}' {what}. Fix the file (see "
        "conda's environment.yml format: channels, then dependencies, with an optional pip: "
        "list), or drop the rule's 'conda:'."
    )


# ---- solving


def solve(env: CondaFile, platform: str) -> CondaLayer:
    """Solve on the host for the image's platform, with the file's channels in order and
    strict channel priority (Snakemake's recommendation); a RuleError when it fails."""
    import rattler
    from rattler import ChannelPriority

    subdir = SUBDIRS.get(platform, "linux-64")
    try:
        records = _run(
            rattler.solve(
                sources=list(env.channels),
                specs=list(env.specs),
                platforms=[rattler.Subdir(subdir), rattler.Subdir("noarch")],
                virtual_packages=_virtual_packages(subdir),
                channel_priority=ChannelPriority.Strict,
            )
        )
    except _rattler_errors() as exc:
        raise RuleError(
            f"Rule '{env.rule}': cannot solve the conda environment '{env.path}' for "
            f"{subdir} from the channels {', '.join(env.channels)}: {_first_lines(exc)}. "
            "Check the package names and versions, and that the channels are reachable."
        ) from exc
    packages = tuple(CondaPackage(r.url, _hex(r.sha256)) for r in records)
    return CondaLayer(env.path, subdir, packages, env.pip)


def _virtual_packages(subdir: str) -> list:
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    arch = "aarch64" if subdir.endswith("aarch64") else "x86_64"
    versions = {"__unix": "0", "__linux": "6.1", "__glibc": GLIBC, "__archspec": "1"}
    builds = {"__archspec": arch}
    return [
        GenericVirtualPackage(
            PackageName(name), Version(version), BuildString(builds.get(name, "0"))
        )
        for name, version in versions.items()
    ]


def _hex(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str) and len(value) == 64:
        return value.lower()
    raise RuleError(f"the conda solve gave a package without a SHA-256 ({value!r})")


def _rattler_errors() -> tuple[type[BaseException], ...]:
    import rattler.exceptions

    found = [
        value
        for value in vars(rattler.exceptions).values()
        if inspect.isclass(value) and issubclass(value, Exception)
    ]
    return tuple(found)


def _first_lines(exc: BaseException, count: int = 8) -> str:
    lines = [line.rstrip() for line in str(exc).splitlines() if line.strip()]
    return " / ".join(lines[:count]) or type(exc).__name__


def _run(coroutine: Any) -> Any:
    # The executor's hooks run without an event loop; a fresh one per call is enough.
    return asyncio.run(coroutine) if inspect.iscoroutine(coroutine) else coroutine


def check_pip(layer: CondaLayer, rule: str) -> None:
    """A pip: section is installed with the environment's own pip, as conda installs it:
    without pip among the packages there is none, and the build would fail."""
    if layer.pip and "pip" not in layer.names:
        raise RuleError(
            f"Rule '{rule}': the conda environment file '{layer.file}' has a 'pip:' section "
            "but its dependencies do not include pip, which installs it. Add 'pip' (and "
            "'python') to its conda dependencies."
        )


def runs_python(layer: CondaLayer) -> bool:
    """Whether the environment has its own Python, which runs the rule's Python script or
    wrapper (runtime/envpython.py); without it knot's runs them, as Snakemake's does."""
    return "python" in layer.names


# ---- installing on the host


def conda_home() -> Path:
    """knot's conda folder on the host: downloaded packages and installed layers."""
    home = os.environ.get("KNOT_HOME") or Path.home() / ".knot"
    return Path(home).expanduser().resolve() / "conda"


def installed_tree(layer: CondaLayer, home: Path | None = None) -> Path:
    """The layer installed on the host (once; later builds reuse the folder), with every
    prefix rewritten to ``layer.prefix``."""
    home = home or conda_home()
    target = home / "envs" / layer.key
    if (target / "conda-meta").is_dir():
        return target
    (home / "envs").mkdir(parents=True, exist_ok=True)
    archives = [fetch_package(package, home / "pkgs", layer.file) for package in layer.packages]
    staging = Path(tempfile.mkdtemp(prefix=f".{layer.key}-", dir=home / "envs"))
    try:
        _install(archives, staging, layer)
        _scrub_host_paths(staging, layer)
        os.replace(staging, target)  # atomic: a concurrent run sees all or nothing
    except OSError:
        if not (target / "conda-meta").is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch_package(package: CondaPackage, cache: Path, file: str) -> Path:
    """The package file, downloaded once and checked against its SHA-256."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{package.sha256}-{package.file_name}"
    if path.is_file() and _sha256(path) == package.sha256:
        return path
    # A name of its own: builds of several rules (three at a time) may fetch the same
    # package at once, and each renames its own finished, checked file into place.
    partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.part")
    try:
        with (
            urllib.request.urlopen(package.url, timeout=120) as response,
            partial.open("wb") as out,
        ):
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise RuleError(
            f"cannot download the conda package {package.url} of the environment '{file}': "
            f"{exc}. Check that its channel is reachable from this machine."
        ) from exc
    got = _sha256(partial)
    if got != package.sha256:
        partial.unlink()
        raise RuleError(
            f"the conda package {package.url} of the environment '{file}' has SHA-256 {got}, "
            f"not {package.sha256} as solved or locked. The channel changed the file: run "
            "'knot lock' again if that is expected."
        )
    os.replace(partial, path)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _install(archives: Sequence[Path], staging: Path, layer: CondaLayer) -> None:
    import rattler

    records = [_run(rattler.RepoDataRecord.from_package_archive(str(a))) for a in archives]
    try:
        _run(
            rattler.install(
                records,
                target_prefix=str(staging),
                alternative_target_prefix=layer.prefix,
                cache_dir=staging.parent.parent / "extracted",
                platform=rattler.Subdir(layer.subdir),
                execute_link_scripts=False,
                show_progress=False,
            )
        )
    except _rattler_errors() as exc:
        raise RuleError(
            f"cannot install the conda environment '{layer.file}': {_first_lines(exc)}"
        ) from exc


def _scrub_host_paths(prefix: Path, layer: CondaLayer) -> None:
    """conda-meta records name the host's cache folders and the downloaded file; the image
    gets the package's own URL instead, and two installs of one list the same bytes."""
    (prefix / "CACHEDIR.TAG").unlink(missing_ok=True)
    urls = {package.sha256: package.url for package in layer.packages}
    for record in sorted((prefix / "conda-meta").glob("*.json")):
        data = json.loads(record.read_text())
        for name in HOST_FIELDS:
            data.pop(name, None)
        url = urls.get(str(data.get("sha256")))
        if url:
            data["url"], data["channel"] = url, url.rsplit("/", 2)[0]
        record.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        record.chmod(0o644)


# ---- the image's side


def listing(prefix: Path) -> str:
    """One line per installed package (name, version, build, URL, SHA-256), sorted: what a
    locked build must reproduce byte for byte."""
    rows = []
    for record in sorted((prefix / "conda-meta").glob("*.json")):
        data = json.loads(record.read_text())
        fields = ("name", "version", "build", "url", "sha256")
        rows.append(" ".join(str(data[name]) for name in fields))
    return "".join(f"{row}\n" for row in sorted(rows))


def add_tree(tar: tarfile.TarFile, layer: CondaLayer, arcname: str) -> None:
    """The installed layer into the build context under ``arcname``, owner and times
    fixed so docker's cache sees content only."""
    root = installed_tree(layer)
    for path in [root, *sorted(root.rglob("*"))]:
        info = tar.gettarinfo(str(path), arcname=f"{arcname}/{path.relative_to(root)}".rstrip("/."))
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode |= 0o444 if not info.issym() else 0
        if info.isreg():
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        else:
            tar.addfile(info)


def dockerfile_block(layer: CondaLayer, context_dir: str, args: Sequence[str] = ()) -> str:
    """COPY the installed layer; then the file's pip: lines with the environment's pip,
    which sees the build ``args`` (the pip index's), declared again: a rule's own
    container is a build stage of its own, where knot's stage declared them does not."""
    block = f"COPY {context_dir}/ {layer.prefix}/"
    if not layer.pip:
        return block
    declared = "".join(f"ARG {name}\n" for name in args)
    return (
        f"{block}\n{declared}COPY {context_dir}.pip.txt {layer.prefix}.pip.txt\n"
        f"RUN {layer.prefix}/bin/python -m pip install --no-cache-dir "
        f"--disable-pip-version-check -r {layer.prefix}.pip.txt"
    )


def pip_requirements(layer: CondaLayer) -> bytes:
    return "".join(f"{line}\n" for line in layer.pip).encode()
