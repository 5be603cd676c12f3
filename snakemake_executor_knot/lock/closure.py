"""The requirement closure a lock pins, and the file hashes that make pip refuse anything else.

``requirements`` pins only the distributions a rule imports; their dependencies float. The
closure walks installed metadata from those pins down to every dependency the target needs
(its markers evaluated for the image's Python and platform, not this machine's), pins each
to the version installed here, and ``index_hashes`` asks PyPI for every file hash of each
pinned release. Both take their I/O as arguments (the metadata lookup, the fetch).
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import logging
import os
import platform as host_platform
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from http.client import HTTPException
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import ConfigError, RuleError
from .format import HASH_PATTERN, Pinned

log = logging.getLogger("knot.image")

FETCH_TIMEOUT = 15
PYPI_RELEASE_JSON = "https://pypi.org/pypi/{name}/{version}/json"
PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
# Hosts whose simple index serves the same files as the JSON API above.
_PYPI_HOSTS = frozenset({"pypi.org", "pypi.python.org"})
_MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}

Distribution = Callable[[str], Any]  # name -> object with .version and .requires


# ---------------------------------------------------------------- closure


def target_environment(python: str, platform: str) -> dict[str, str]:
    """PEP 508 marker variables of a Linux CPython ``python`` ("3.11" or "3.11.4") on
    ``platform`` ("linux/amd64" or "linux/arm64")."""
    if platform not in _MACHINES:
        raise ConfigError(
            f"knot builds images for {', '.join(_MACHINES)}, not '{platform}'. "
            "Choose instance types of one of those architectures."
        )
    parts = python.split(".")
    if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
        raise ConfigError(f"'{python}' is not a Python version like 3.11 or 3.11.4.")
    return {
        "implementation_name": "cpython",
        "implementation_version": _full_version(parts),
        "os_name": "posix",
        "platform_machine": _MACHINES[platform],
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": _full_version(parts),
        "python_version": ".".join(parts[:2]),
        "sys_platform": "linux",
    }


def _full_version(parts: list[str]) -> str:
    # The image's patch release is unknown when only "3.11" is given: assume the host's
    # when the minor versions agree (the image is meant to match it), else ".0".
    if len(parts) == 3:
        return ".".join(parts)
    local = host_platform.python_version_tuple()
    return ".".join([*parts, local[2] if list(local[:2]) == parts else "0"])


def closure(
    requirements: Iterable[str],
    *,
    python: str,
    platform: str,
    rule: str,
    distribution: Distribution = metadata.distribution,
) -> list[Pinned]:
    """Every distribution the target needs for ``requirements``, following installed
    metadata and the requested extras, each pinned to its installed version, sorted by
    canonical name. A needed distribution not installed here, or installed at a version
    a specifier excludes, is a RuleError naming ``rule`` and the chain that needs it."""
    environment = target_environment(python, platform)
    roots = [_parse(spec, rule, ()) for spec in sorted(requirements)]
    # Each requirement still to walk, with the chain of names that led to it.
    queue: deque[tuple[Requirement, tuple[str, ...]]] = deque(
        (req, ()) for req in roots if _applies(req, environment, {""})
    )
    pins: dict[str, str] = {}
    walked: dict[str, set[str]] = {}
    while queue:
        req, parents = queue.popleft()
        key = canonicalize_name(req.name)
        chain = (*parents, key)
        dist = _installed(req, chain, rule, distribution)
        pins[key] = dist.version
        new = {""} | set(map(canonicalize_name, req.extras))
        new -= walked.setdefault(key, set())
        walked[key] |= new
        for child in _children(dist, new, environment, chain, rule):
            queue.append((child, chain))
    return [Pinned(name, pins[name]) for name in sorted(pins)]


def _parse(spec: str, rule: str, chain: tuple[str, ...]) -> Requirement:
    try:
        return Requirement(spec)
    except InvalidRequirement as exc:
        where = f" (metadata of {' -> '.join(chain)})" if chain else ""
        raise RuleError(
            f"Rule '{rule}': '{spec}'{where} is not a valid requirement ({exc}). Fix the "
            "specifier, or reinstall the distribution whose metadata holds it."
        ) from exc


def _applies(req: Requirement, environment: dict[str, str], extras: set[str]) -> bool:
    """True when ``req``'s marker holds on the target for any of ``extras`` ("" = none)."""
    if req.marker is None:
        return "" in extras
    return any(req.marker.evaluate({**environment, "extra": extra}) for extra in extras)


def _children(
    dist: Any, extras: set[str], environment: dict[str, str], chain: tuple[str, ...], rule: str
) -> list[Requirement]:
    """The dependencies of ``dist`` that the newly requested ``extras`` bring in."""
    found = [_parse(spec, rule, chain) for spec in dist.requires or ()]
    return [req for req in found if _applies(req, environment, extras)]


def _installed(
    req: Requirement, chain: tuple[str, ...], rule: str, distribution: Distribution
) -> Any:
    try:
        dist = distribution(req.name)
    except metadata.PackageNotFoundError as exc:
        raise RuleError(
            f"Rule '{rule}' needs {req.name} on the image's platform ({_describe(chain)}), "
            f"but it is not installed here, so knot cannot pin its version. Install it "
            f"(pip install '{_pip_spec(req)}') and run 'knot lock' again."
        ) from exc
    if not req.specifier.contains(dist.version, prereleases=True):
        raise RuleError(
            f"Rule '{rule}' needs {req} ({_describe(chain)}), but {dist.version} is "
            f"installed here. Install a matching version (pip install '{_pip_spec(req)}') and run "
            "'knot lock' again."
        )
    return dist


def _pip_spec(req: Requirement) -> str:
    # Without its marker: a dependency needed only on the target (platform_machine ==
    # "aarch64" locked from an x86 laptop) must still be installed here to be pinned.
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def _describe(chain: tuple[str, ...]) -> str:
    if len(chain) == 1:
        return "a top-level requirement"
    return "required through " + " -> ".join(chain)


# ---------------------------------------------------------------- index hashes


def index_hashes(
    name: str,
    version: str,
    fetch: Callable[[str], bytes] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The sha256 hashes ("sha256:<hex>", sorted) of every file of release ``version`` of
    ``name`` on PyPI, so pip accepts whichever file fits the target. [] when pip is set to
    use another index (its files may differ), or when PyPI cannot be read: the caller
    logs that and locks without hashes."""
    if not uses_pypi(os.environ if environ is None else environ):
        return []
    quoted = {"name": urllib.parse.quote(name), "version": urllib.parse.quote(version)}
    fetch = fetch or _fetch
    try:
        try:
            files = _files(json.loads(fetch(PYPI_RELEASE_JSON.format(**quoted))), "urls")
        except urllib.error.HTTPError as exc:
            # Some PyPI mirrors serve only the project document; it lists every release.
            if exc.code != 404:
                raise
            releases = _files(json.loads(fetch(PYPI_PROJECT_JSON.format(**quoted))), "releases")
            files = releases.get(version, []) if isinstance(releases, dict) else []
    except (OSError, HTTPException, ValueError) as exc:
        log.debug("No hashes for %s==%s from PyPI: %s", name, version, exc)
        return []
    return _sha256s(files)


def uses_pypi(environ: Mapping[str, str]) -> bool:
    """True when pip's index settings point only at PyPI. An extra index counts too: pip
    may pick its file for a version, and that file's hash would not be in the list."""
    urls = environ.get("PIP_INDEX_URL", "").split() + environ.get("PIP_EXTRA_INDEX_URL", "").split()
    return all(urllib.parse.urlsplit(url).hostname in _PYPI_HOSTS for url in urls)


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        return response.read()


def _files(document: object, key: str) -> object:
    return document.get(key) if isinstance(document, dict) else None


def _sha256s(files: object) -> list[str]:
    """The well-formed sha256 digests of a list of PyPI file entries, sorted."""
    found = set()
    for entry in files if isinstance(files, list) else ():
        digest = entry.get("digests", {}).get("sha256") if isinstance(entry, dict) else None
        if isinstance(digest, str) and HASH_PATTERN.fullmatch(f"sha256:{digest}"):
            found.add(f"sha256:{digest}")
    return sorted(found)


__all__ = [
    "Distribution",
    "closure",
    "index_hashes",
    "target_environment",
    "uses_pypi",
]
