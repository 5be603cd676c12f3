"""When knot.lock no longer fits, and what a run does about it.

``check_lock`` compares a lock with the workflow and setup of now (pure). A run then follows
the lock as it is, refreshes it (re-pins only the rules whose imports changed, and writes it
back with a notice), or with ``--knot-locked`` refuses and names what changed. What a
refresh cannot fix (another knot, platform or base image) is always an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import __version__
from ..errors import ConfigError
from ..image.base import BaseImage
from .format import Lock, read_lock, write_lock
from .workflow import HashCache, RuleBasis, build_lock, python_version

log = logging.getLogger("knot")


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


# ---------------------------------------------------------------- following


def fixed_problems(lock: Lock, *, platform: str, base_name: str) -> list[str]:
    """What a refresh cannot fix: the lock was written for another knot, platform or base
    image, and re-pinning every rule silently would defeat the lock."""
    problems = check_lock(
        lock, knot_version=__version__, platform=platform, rules=lock_sources(lock)
    )
    if lock.base_image.name != base_name:
        problems.append(
            f"knot.lock was written for base image {lock.base_image.name}, but this run uses "
            f"{base_name}."
        )
    return problems


def lock_sources(lock: Lock) -> dict[str, str]:
    return {name: entry.source for name, entry in lock.rules.items()}


def rule_problems(lock: Lock, bases: Mapping[str, RuleBasis]) -> list[str]:
    """How the workflow's rules differ from the lock's: added, removed, changed imports."""
    sources = {name: basis.source for name, basis in bases.items()}
    problems = check_lock(lock, knot_version=lock.knot, platform=lock.platform, rules=sources)
    changed = [b for n, b in bases.items() if n in lock.rules and lock.rules[n].source != b.source]
    if changed:
        problems.append("Now: " + "; ".join(basis.describe() for basis in changed) + ".")
    return problems


def follow_lock(
    path: Path,
    bases: Callable[[], Mapping[str, RuleBasis]],
    *,
    platform: str,
    base_name: str,
    locked: bool,
) -> Lock | None:
    """The lock a run builds from: None without knot.lock (an error with ``locked``); the
    lock itself when it fits; else a refreshed lock, written back with a notice, or with
    ``locked`` a ConfigError naming the rules and what changed. ``bases`` gives the
    workflow's rules (called only when there is a lock: finding imports costs time)."""
    if not path.exists():
        if locked:
            raise ConfigError(
                f"--knot-locked is set, but there is no {path}. Run 'knot lock' in the "
                "workflow's folder first, and commit the file."
            )
        return None
    lock = read_lock(path)
    problems = fixed_problems(lock, platform=platform, base_name=base_name)
    if problems:
        raise ConfigError(
            f"{path} does not fit this run: " + " ".join(problems) + " Run 'knot lock' to "
            "rewrite it for this setup (review the diff before committing it)."
        )
    current = bases()
    drift = rule_problems(lock, current)
    if not drift:
        return lock
    if locked:
        raise ConfigError(
            f"{path} no longer matches the Snakefile, and --knot-locked is set: "
            + " ".join(drift)
            + " Run 'knot lock' to update it, or undo the change."
        )
    return refresh(path, lock, current)


def refresh(path: Path, lock: Lock, bases: Mapping[str, RuleBasis]) -> Lock:
    """Re-pin the rules whose imports changed and drop removed ones, keeping every other
    entry and the locked base image as they are."""
    if lock.python != python_version():
        raise ConfigError(
            f"{path} must be refreshed (the Snakefile changed), but it was written with "
            f"Python {lock.python} and this is Python {python_version()}, whose installed "
            "versions would not match. Run 'knot lock' with the locked Python."
        )
    fresh = build_lock(
        bases,
        platform=lock.platform,
        base_image=lock.base_image,
        hashes=HashCache(),
        keep=lock.rules,
    )
    write_lock(path, fresh)
    changed = sorted(n for n in fresh.rules if lock.rules.get(n) != fresh.rules[n])
    removed = sorted(set(lock.rules) - set(fresh.rules))
    log.warning(
        "knot: refreshed %s for the changed Snakefile (re-pinned: %s; dropped: %s).",
        path,
        ", ".join(changed) or "none",
        ", ".join(removed) or "none",
    )
    return fresh


__all__ = [
    "check_lock",
    "fixed_problems",
    "follow_lock",
    "lock_sources",
    "refresh",
    "rule_problems",
]
