"""knot.lock: the full, hashed requirement closure of every rule, fixed for one platform.

``requirements`` pins only the distributions a rule imports; their dependencies float. The
lock walks installed metadata from those pins down to every dependency the target needs,
pins each to the version installed here, and records the index's file hashes so pip's
``--require-hashes`` refuses anything else. Pure parts (closure walk, lock file format,
drift check, requirements text, platform choice) take their I/O as arguments.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import logging
import os
import platform as host_platform
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import ConfigError, DockerError, RuleError

log = logging.getLogger("knot.image")

LOCK_FILE = "knot.lock"
LOCK_VERSION = 1
HEADER = "# knot.lock: written by 'knot lock'. Commit it; builds follow it.\n"
FETCH_TIMEOUT = 15
PYPI_RELEASE_JSON = "https://pypi.org/pypi/{name}/{version}/json"
PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
# Hosts whose simple index serves the same files as the JSON API above.
_PYPI_HOSTS = frozenset({"pypi.org", "pypi.python.org"})
_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
# Batch's instance-type keywords that are not EC2 families.
_KEYWORD_ARCH = {"optimal": "amd64", "default_x86_64": "amd64", "default_arm64": "arm64"}
# Graviton: a1, or a family whose generation digit is followed by "g" (m6g, c7gn, x2gd, im4gn).
_GRAVITON = re.compile(r"a1|[a-z]+[0-9]+g[a-z]*")

Distribution = Callable[[str], Any]  # name -> object with .version and .requires


@dataclass(frozen=True)
class Pinned:
    """One distribution of a closure: canonical name, exact version, sha256 file hashes
    ("sha256:<hex>", sorted; empty when the index provides none)."""

    name: str
    version: str
    hashes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "hashes", tuple(sorted(set(self.hashes))))


@dataclass(frozen=True)
class BaseImage:
    """The base image by name and by the digest it had when the lock was written."""

    name: str
    digest: str


@dataclass(frozen=True)
class RuleLock:
    """A rule's closure, and the hash of what its top-level requirements came from."""

    requirements: tuple[Pinned, ...]
    source: str

    def __post_init__(self) -> None:
        pins = sorted(self.requirements, key=lambda pin: pin.name)
        object.__setattr__(self, "requirements", tuple(pins))


@dataclass(frozen=True)
class Lock:
    """The content of knot.lock (format version ``LOCK_VERSION``)."""

    knot: str
    platform: str
    python: str
    base_image: BaseImage
    rules: Mapping[str, RuleLock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", dict(sorted(self.rules.items())))


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
    queue = deque((req, ()) for req in roots if _applies(req, environment, {""}))
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
        if isinstance(digest, str) and _HASH.fullmatch(f"sha256:{digest}"):
            found.add(f"sha256:{digest}")
    return sorted(found)


# ---------------------------------------------------------------- lock file


def write_lock(path: str | Path, lock: Lock) -> None:
    """Write ``lock`` as YAML with a header comment, keys in a fixed order, so equal
    locks give byte-equal files and diffs show only what changed."""
    text = yaml.safe_dump(lock_document(lock), sort_keys=False, default_flow_style=False)
    Path(path).write_text(HEADER + text, encoding="utf-8")


def lock_document(lock: Lock) -> dict[str, Any]:
    """The plain data written to knot.lock."""
    return {
        "version": LOCK_VERSION,
        "knot": lock.knot,
        "platform": lock.platform,
        "python": lock.python,
        "base_image": {"name": lock.base_image.name, "digest": lock.base_image.digest},
        "rules": {name: _rule_document(entry) for name, entry in lock.rules.items()},
    }


def _rule_document(entry: RuleLock) -> dict[str, Any]:
    pins = [
        {"name": pin.name, "version": pin.version, "hashes": list(pin.hashes)}
        for pin in entry.requirements
    ]
    return {"requirements": pins, "source": entry.source}


def read_lock(path: str | Path) -> Lock:
    """Read knot.lock. Anything that is not a version-1 lock as ``write_lock`` writes it
    (not YAML, missing or unknown keys, a wrong type) is a ConfigError saying what."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc})") from exc
    except yaml.YAMLError as exc:
        raise _bad(path, f"is not valid YAML ({exc})") from exc
    try:
        return parse_lock(data)
    except _Invalid as exc:
        raise _bad(path, str(exc)) from exc


class _Invalid(ValueError):
    """A structural problem in a lock document; read_lock adds the path and the fix."""


def _bad(path: str | Path, problem: str) -> ConfigError:
    return ConfigError(f"{path} {problem}. Run 'knot lock' again to rewrite it.")


def parse_lock(data: object) -> Lock:
    """A Lock from a loaded lock document; raises ValueError describing the first problem."""
    # The version first: another format's keys would otherwise hide the real reason.
    version = _mapping(data, "the file", None).get("version")
    if type(version) is not int or version != LOCK_VERSION:
        raise _Invalid(f"has format version {version!r}; this knot reads version {LOCK_VERSION}")
    top = _mapping(
        data, "the file", ("version", "knot", "platform", "python", "base_image", "rules")
    )
    image = _mapping(top["base_image"], "base_image", ("name", "digest"))
    rules = _mapping(top["rules"], "rules", None)
    return Lock(
        knot=_text(top["knot"], "knot"),
        platform=_text(top["platform"], "platform"),
        python=_text(top["python"], "python"),
        base_image=BaseImage(
            _text(image["name"], "base_image.name"), _text(image["digest"], "base_image.digest")
        ),
        rules={
            _text(name, "a rule name"): _rule(value, f"rules.{name}")
            for name, value in rules.items()
        },
    )


def _rule(data: object, where: str) -> RuleLock:
    entry = _mapping(data, where, ("requirements", "source"))
    items = _list(entry["requirements"], f"{where}.requirements")
    pins = [_pin(item, f"{where}.requirements[{index}]") for index, item in enumerate(items)]
    names = [pin.name for pin in pins]
    if len(set(names)) != len(names):
        raise _Invalid(f"lists a distribution twice in {where}.requirements")
    return RuleLock(tuple(pins), _text(entry["source"], f"{where}.source"))


def _pin(data: object, where: str) -> Pinned:
    entry = _mapping(data, where, ("name", "version", "hashes"))
    hashes = [_text(item, f"{where}.hashes") for item in _list(entry["hashes"], f"{where}.hashes")]
    for item in hashes:
        if not _HASH.fullmatch(item):
            raise _Invalid(f"has {item!r} in {where}.hashes, which is not sha256:<64 hex digits>")
    return Pinned(
        _text(entry["name"], f"{where}.name"),
        _text(entry["version"], f"{where}.version"),
        tuple(hashes),
    )


def _mapping(data: object, where: str, keys: tuple[str, ...] | None) -> dict:
    """``data`` as a dict with exactly ``keys`` (any keys when None)."""
    if not isinstance(data, dict):
        raise _Invalid(f"has {_kind(data)} where {where} should be a mapping")
    if keys is not None:
        missing = [key for key in keys if key not in data]
        unknown = sorted(str(key) for key in data if key not in keys)
        if missing:
            raise _Invalid(f"lacks key(s) {', '.join(missing)} in {where}")
        if unknown:
            raise _Invalid(f"has unknown key(s) {', '.join(unknown)} in {where}")
    return data


def _list(data: object, where: str) -> list:
    if not isinstance(data, list):
        raise _Invalid(f"has {_kind(data)} where {where} should be a list")
    return data


def _text(data: object, where: str) -> str:
    # YAML reads 2.0 or 3.10 unquoted as floats; a lock needs the exact text.
    if not isinstance(data, str):
        raise _Invalid(f"has {_kind(data)} where {where} should be a string")
    return data


def _kind(data: object) -> str:
    return f"{type(data).__name__} {data!r}"[:80]


# ---------------------------------------------------------------- drift


def check_lock(
    lock: Lock,
    *,
    knot_version: str,
    platform: str,
    rules: Mapping[str, str],
    python: str | None = None,
    base_image: BaseImage | None = None,
) -> list[str]:
    """The ways ``lock`` no longer fits this workflow, one sentence each ([] when it fits).
    ``rules`` maps each rule name to the source hash of its requirements now; ``python``
    and ``base_image`` are compared only when given."""
    problems = [
        *_field_drift("knot", lock.knot, knot_version),
        *_field_drift("platform", lock.platform, platform),
        *(_field_drift("python", lock.python, python) if python is not None else []),
        *_image_drift(lock.base_image, base_image),
    ]
    missing = sorted(set(rules) - set(lock.rules))
    extra = sorted(set(lock.rules) - set(rules))
    changed = sorted(n for n in set(rules) & set(lock.rules) if lock.rules[n].source != rules[n])
    if missing:
        problems.append(f"knot.lock lacks {_rules(missing)}, which the workflow has.")
    if extra:
        problems.append(f"knot.lock has {_rules(extra)}, which the workflow no longer has.")
    if changed:
        problems.append(
            f"The requirements of {_rules(changed)} may have changed since knot.lock was "
            "written: their source differs."
        )
    return problems


def _field_drift(label: str, locked: str, now: str) -> list[str]:
    if locked == now:
        return []
    return [f"knot.lock was written for {label} {locked}, but this run uses {label} {now}."]


def _image_drift(locked: BaseImage, now: BaseImage | None) -> list[str]:
    if now is None or now == locked:
        return []
    return [
        f"knot.lock was written for base image {locked.name} ({locked.digest}), but this run "
        f"uses {now.name} ({now.digest})."
    ]


def _rules(names: list[str]) -> str:
    return ("rule " if len(names) == 1 else "rules ") + ", ".join(f"'{n}'" for n in names)


# ---------------------------------------------------------------- requirements.txt


def requirements_lines(pins: Iterable[Pinned]) -> tuple[str, bool]:
    """requirements.txt text for ``pins`` (one ``name==version`` line each, sorted) and
    whether it carries hashes. pip's hash checking is all-or-nothing: when any pin lacks
    hashes, no line gets them and the flag is False."""
    pins = sorted(pins, key=lambda pin: pin.name)
    hashed = bool(pins) and all(pin.hashes for pin in pins)
    lines = []
    for pin in pins:
        hashes = "".join(f" --hash={digest}" for digest in pin.hashes) if hashed else ""
        lines.append(f"{pin.name}=={pin.version}{hashes}\n")
    return "".join(lines), hashed


# ---------------------------------------------------------------- base image, platform


def base_image_digest(docker_client: Any, name: str) -> str:
    """The digest ("sha256:...") of local image ``name``: its registry digest when it has
    one, else its image id (images made by ``docker import`` have no registry digest).
    Docker's own errors (image not found, engine down) pass through for the caller."""
    attrs = docker_client.images.get(name).attrs
    digests = sorted(attrs.get("RepoDigests") or [])
    if digests:
        repository = image_repository(name)
        matching = [d for d in digests if d.split("@", 1)[0] == repository] or digests
        return matching[0].split("@", 1)[1]
    if not attrs.get("Id"):
        raise DockerError(f"Docker reports neither a digest nor an id for image {name}.")
    return attrs["Id"]


def image_repository(name: str) -> str:
    """``name`` without its tag or digest: "python:3.11-slim" -> "python"."""
    name = name.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def platform_for(instance_types: tuple[str, ...]) -> str:
    """The image platform for a compute environment of ``instance_types``: linux/arm64
    when all are Graviton, linux/amd64 otherwise. One image serves every instance, so a
    mix of architectures is a ConfigError."""
    arches = {kind: _architecture(kind) for kind in instance_types}
    arm = sorted(kind for kind, arch in arches.items() if arch == "arm64")
    x86 = sorted(kind for kind, arch in arches.items() if arch == "amd64")
    if arm and x86:
        raise ConfigError(
            f"The instance types mix arm64 ({', '.join(arm)}) and x86_64 ({', '.join(x86)}). "
            "Each rule's image is built for one architecture: list only Graviton types or "
            "only x86 types in --knot-instance-types and --knot-compute-classes."
        )
    return "linux/arm64" if arm else "linux/amd64"


def _architecture(instance_type: str) -> str:
    kind = instance_type.strip().lower()
    if kind in _KEYWORD_ARCH:
        return _KEYWORD_ARCH[kind]
    family = kind.split(".", 1)[0]
    return "arm64" if _GRAVITON.fullmatch(family) else "amd64"


__all__ = [
    "LOCK_FILE",
    "LOCK_VERSION",
    "BaseImage",
    "Lock",
    "Pinned",
    "RuleLock",
    "base_image_digest",
    "check_lock",
    "closure",
    "image_repository",
    "index_hashes",
    "lock_document",
    "parse_lock",
    "platform_for",
    "read_lock",
    "requirements_lines",
    "target_environment",
    "uses_pypi",
    "write_lock",
]
