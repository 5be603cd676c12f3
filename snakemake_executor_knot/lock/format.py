"""knot.lock's content and file format: the dataclasses a lock is made of, writing them as
YAML with keys in a fixed order, reading them back with every structural problem named, and
the requirements.txt lines a locked rule installs.

A lock is the full, hashed requirement closure of every rule, fixed for one platform (the
closure is found in ``closure``, checked against the workflow in ``drift``). Everything here
is pure but for reading and writing the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..image.base import BaseImage

LOCK_FILE = "knot.lock"
LOCK_VERSION = 1
HEADER = "# knot.lock: written by 'knot lock'. Commit it; builds follow it.\n"
# A file hash as the lock records it (and pip's --hash takes it).
HASH_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")


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
class RuleLock:
    """A rule's closure, and the hash of what its top-level requirements came from."""

    requirements: tuple[Pinned, ...]
    source: str
    # knot_apt's whole closure as apt-get's name=version (image/apt.py); written only
    # when present, so locks of rules without apt packages read as before.
    apt: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        pins = sorted(self.requirements, key=lambda pin: pin.name)
        object.__setattr__(self, "requirements", tuple(pins))
        object.__setattr__(self, "apt", tuple(sorted(self.apt)))


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
    document: dict[str, Any] = {"requirements": pins, "source": entry.source}
    if entry.apt:
        document["apt"] = list(entry.apt)
    return document


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
    optional = ("apt",) if isinstance(data, dict) and "apt" in data else ()
    entry = _mapping(data, where, ("requirements", "source", *optional))
    items = _list(entry["requirements"], f"{where}.requirements")
    pins = [_pin(item, f"{where}.requirements[{index}]") for index, item in enumerate(items)]
    names = [pin.name for pin in pins]
    if len(set(names)) != len(names):
        raise _Invalid(f"lists a distribution twice in {where}.requirements")
    apt = [_text(item, f"{where}.apt") for item in _list(entry.get("apt", []), f"{where}.apt")]
    return RuleLock(tuple(pins), _text(entry["source"], f"{where}.source"), tuple(apt))


def _pin(data: object, where: str) -> Pinned:
    entry = _mapping(data, where, ("name", "version", "hashes"))
    hashes = [_text(item, f"{where}.hashes") for item in _list(entry["hashes"], f"{where}.hashes")]
    for item in hashes:
        if not HASH_PATTERN.fullmatch(item):
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


__all__ = [
    "HASH_PATTERN",
    "HEADER",
    "LOCK_FILE",
    "LOCK_VERSION",
    "BaseImage",
    "Lock",
    "Pinned",
    "RuleLock",
    "lock_document",
    "parse_lock",
    "read_lock",
    "requirements_lines",
    "write_lock",
]
