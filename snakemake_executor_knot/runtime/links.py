"""Symbolic links among a job's outputs.

A rule may make an output as a link (``ln -s sample.txt {output}``); on one machine it stays
a link, and Snakemake keeps it so. The object in S3 holds the bytes the link leads to (so a
storage-mode reader, or Snakemake's storage plugin, reads the content), and its metadata
``knot-link`` names the link's target. In local mode the host then makes the link again,
when its target is relative and stays inside the working directory; anything else, and
every target read back from S3 is hostile, stays the plain file that was downloaded.
Standard library only: the runtime and the host both use it.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import quote, unquote

from .contract import LINK_METADATA
from .paths import inside

# S3 user metadata travels in HTTP headers: ASCII only, and 2 KiB for all of it.
MAX_TARGET_CHARS = 1024


def acceptable(link: str, target: str) -> bool:
    """Whether ``target`` (a link's text) is one knot recreates: relative, no NUL, and,
    joined to the folder of ``link`` (relative to the working directory), never above it."""
    if not target or "\x00" in target or posixpath.isabs(target):
        return False
    if len(target) > MAX_TARGET_CHARS:
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
    return joined != ".." and not joined.startswith("../") and not posixpath.isabs(joined)


def link_metadata(path: str) -> dict[str, str]:
    """``{"knot-link": <quoted target>}`` when the output at ``path`` (relative to the
    working directory) is a link knot recreates; else {}."""
    if not os.path.islink(path):
        return {}
    target = os.readlink(path)
    if not acceptable(path, target):
        return {}
    return {LINK_METADATA: quote(target, safe="/._-~+")}


def recorded_target(metadata: dict | None) -> str | None:
    """The link target an object's metadata names, or None."""
    value = (metadata or {}).get(LINK_METADATA)
    if not isinstance(value, str) or not value:
        return None
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        return None


def relink(dest: Path, target: str, workdir: Path) -> bool:
    """Replace the downloaded file ``dest`` by a link to ``target`` when that is safe: the
    target is acceptable, and where it leads (through any links on the way) exists inside
    ``workdir``. Returns whether the link was made."""
    try:
        relative = dest.absolute().relative_to(workdir).as_posix()
    except ValueError:
        return False
    if not acceptable(relative, target):
        return False
    leads_to = dest.parent / target
    if not leads_to.exists() or not inside(workdir, leads_to):
        return False
    staged = dest.with_name(dest.name + ".knot-link")
    if os.path.lexists(staged):
        os.remove(staged)
    os.symlink(target, staged)
    os.replace(staged, dest)
    return True
