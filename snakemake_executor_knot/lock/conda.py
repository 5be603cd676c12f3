"""knot.conda.lock: every conda environment of a workflow pinned, as conda-lock's explicit
lists pin one: each package by exact URL and SHA-256, for the platform of the images, and
its pip: lines as hashed requirements (``pippins.py``).

``knot lock`` writes it next to knot.lock (its own file, so a workflow without conda:
has none). A run with ``--software-deployment-method conda`` builds each environment from
its entry when the environment file is unchanged (the entry holds the file's SHA-256):
no solve, exactly those files. A changed or new file is solved again and the entry
rewritten with a notice; with ``--knot-locked`` that is an error instead, as for knot.lock.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, RuleError
from ..image.conda import (
    SUBDIRS,
    CondaFile,
    CondaLayer,
    CondaPackage,
    read_conda_file,
    runs_python,
    solve,
)
from ..rules.conda import conda_file
from ..rules.languages import is_python_script
from .pippins import pinned

log = logging.getLogger("knot")

CONDA_LOCK_FILE = "knot.conda.lock"
VERSION = 1
HEADER = "# knot.conda.lock: written by 'knot lock'. Commit it; conda builds follow it.\n"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def conda_lock_path(workflow) -> Path:
    return Path(workflow.main_snakefile).resolve().parent / CONDA_LOCK_FILE


def file_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# ---- knot lock


def lock_environments(workflow, platform: str) -> dict[str, dict]:
    """Every environment file a rule names, solved for ``platform``: the lock's entries."""
    entries: dict[str, dict] = {}
    for rule in workflow.rules:
        found = conda_file(workflow, rule)
        if found is None or found[0] in entries:
            continue
        env = read_conda_file(rule.name, *found)
        entries[found[0]] = _entry(found[1], pinned(solve(env, platform)))
    return entries


def write_conda_lock(path: Path, platform: str, entries: Mapping[str, dict]) -> None:
    document = {
        "version": VERSION,
        "platform": SUBDIRS.get(platform, "linux-64"),
        "environments": dict(sorted(entries.items())),
    }
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    path.write_text(HEADER + text, encoding="utf-8")


def _entry(text: str, layer: CondaLayer) -> dict[str, Any]:
    packages = sorted(layer.packages, key=lambda p: p.url)
    return {
        "source": file_hash(text),
        "packages": [{"url": p.url, "sha256": p.sha256} for p in packages],
        "pip": list(layer.pip),
    }


def runs_in_locked_python(workflow) -> Callable[[Any], bool]:
    """Whether a rule's Python script or wrapper runs with its conda environment's own
    Python, as knot.conda.lock records the environment: then its imports are the
    environment's, and knot.lock pins none of them. 'knot lock' and a run's drift check
    ask the same file, so they agree; without the file (or an entry) no rule does."""
    path = conda_lock_path(workflow)
    try:
        subdir, entries = read_conda_lock(path) if path.exists() else ("", {})
    except ConfigError:
        subdir, entries = "", {}  # the run's conda layer names the damage
    with_python = {n for n, entry in entries.items() if runs_python(_layer(n, entry, subdir))}

    def runs_in_python(rule) -> bool:
        if not with_python or not is_python_script(rule):
            return False
        try:
            found = conda_file(workflow, rule)
        except RuleError:
            return False  # refused where the run plans the rule
        return found is not None and found[0] in with_python

    return runs_in_python


# ---- a run following it


def locked_layer(
    path: Path, env: CondaFile, text: str, platform: str, *, locked: bool
) -> CondaLayer:
    """The environment's layer: from the lock when its entry fits the file, else solved
    (the entry rewritten), or with ``locked`` a ConfigError."""
    if not path.exists():
        if locked:
            raise ConfigError(
                f"--knot-locked is set, but there is no {path} for rule '{env.rule}''s conda "
                f"environment '{env.path}'. Run 'knot lock' first, and commit the file."
            )
        return solve(env, platform)
    subdir, entries = read_conda_lock(path)
    wanted = SUBDIRS.get(platform, "linux-64")
    if subdir != wanted:
        raise ConfigError(
            f"{path} was written for {subdir}, but this run builds for {wanted}. Run "
            "'knot lock' to rewrite it for this setup."
        )
    entry = entries.get(env.path)
    if entry is not None and entry["source"] == file_hash(text):
        return _layer(env.path, entry, subdir)
    what = "is not in it" if entry is None else "changed since it was written"
    if locked:
        raise ConfigError(
            f"rule '{env.rule}''s conda environment '{env.path}' {what}, and --knot-locked "
            f"is set ({path}). Run 'knot lock' to update it, or undo the change."
        )
    layer = pinned(solve(env, platform))
    write_conda_lock(path, platform, {**entries, env.path: _entry(text, layer)})
    log.warning("knot: refreshed %s: '%s' %s; solved it again.", path, env.path, what)
    return layer


def _layer(name: str, entry: dict, subdir: str) -> CondaLayer:
    """The layer a checked entry of the lock pins."""
    packages = tuple(CondaPackage(p["url"], p["sha256"]) for p in entry["packages"])
    return CondaLayer(name, subdir, packages, tuple(entry["pip"]))


def read_conda_lock(path: Path) -> tuple[str, dict[str, dict]]:
    """The lock's platform and entries; a ConfigError naming the first problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"is not a version-{VERSION} {CONDA_LOCK_FILE}")
        subdir, entries = data.get("platform"), data.get("environments")
        if not isinstance(subdir, str) or not isinstance(entries, dict):
            raise ValueError("lacks its platform or environments")
        for name, entry in entries.items():
            _check_entry(str(name), entry)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{path} {exc}. Run 'knot lock' again to rewrite it.") from exc
    return subdir, entries


def _check_entry(name: str, entry: object) -> None:
    if not isinstance(entry, dict) or set(entry) != {"source", "packages", "pip"}:
        raise ValueError(f"has a malformed entry for '{name}'")
    packages, pip = entry["packages"], entry["pip"]
    if not isinstance(packages, list) or not isinstance(pip, list):
        raise ValueError(f"has a malformed entry for '{name}'")
    if not all(isinstance(line, str) and "\n" not in line for line in pip):
        raise ValueError(f"has a pip: line in '{name}' that is not one line of text")
    for package in packages:
        ok = isinstance(package, dict) and set(package) == {"url", "sha256"}
        if not ok or not isinstance(package["url"], str):
            raise ValueError(f"has a malformed package in '{name}'")
        if not _SHA256.fullmatch(str(package["sha256"])):
            raise ValueError(f"has a package in '{name}' without a sha256 of 64 hex digits")


__all__ = [
    "conda_lock_path",
    "lock_environments",
    "locked_layer",
    "runs_in_locked_python",
    "write_conda_lock",
]
