"""Keeping every path built from an S3 key or a job spec inside its destination.

Keys listed in S3 and paths in a spec are hostile input: anything holding the job role can
plant ``<prefix>/../../.bashrc``, and a spec names the files the runtime writes. Host and
runtime build every such path through ``contained``, so one function decides what is safe.
Standard library only: the runtime imports it inside the image.
"""

from __future__ import annotations

import os
from pathlib import Path


class UnsafePath(ValueError):
    """A key or spec path that would be written outside its destination."""


def contained(root: str | os.PathLike, relative: str, what: str = "path") -> Path:
    """``root / relative``, refused unless it stays inside ``root``.

    Refuses an empty path, a NUL byte, an absolute path, any ``..`` part, and a path that
    leaves ``root`` once symlinks are resolved (a folder or file in the way that links
    elsewhere). ``.`` and empty parts (``a//b``) are dropped, as the filesystem would.
    ``what`` names the source in the error, e.g. the S3 key.
    """
    base = Path(root).resolve()
    problem = _lexical_problem(relative)
    if problem:
        raise UnsafePath(f"refusing {what} {relative!r}: {problem}; the destination is {base}")
    target = base.joinpath(*_parts(relative))
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePath(
            f"refusing {what} {relative!r}: {target} resolves to {resolved} through a "
            f"symbolic link, outside the destination {base}"
        )
    return target


def _parts(relative: str) -> list[str]:
    return [part for part in relative.split("/") if part not in ("", ".")]


def _lexical_problem(relative: str) -> str | None:
    if not isinstance(relative, str):
        return f"it is a {type(relative).__name__}, not a string"
    if "\x00" in relative:
        return "it holds a NUL byte"
    if relative.startswith("/") or os.path.isabs(relative):
        return "it is an absolute path"
    if ".." in relative.split("/"):
        return "it has a '..' part"
    if not _parts(relative):
        return "it names no file"
    return None


def inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether ``path`` (absolute, or relative to the current directory) lies inside
    ``root`` once symlinks are resolved. For checking the host's own paths."""
    base = Path(root).resolve()
    resolved = Path(os.path.abspath(path)).resolve()
    return resolved == base or base in resolved.parents
