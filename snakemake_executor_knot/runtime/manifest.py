"""The manifest of a directory in S3: each file's key under the prefix, size and SHA-256.

The runtime writes it after a directory output's files; the host reads it and downloads
exactly those files, then checks each one's size and hash. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass

from . import jsondoc
from .contract import MANIFEST_MAX_BYTES, MANIFEST_SUFFIX, MANIFEST_VERSION

_HEX64 = re.compile(r"[0-9a-f]{64}")


class BadManifest(ValueError):
    """A manifest that is not what the runtime writes."""


@dataclass(frozen=True)
class Entry:
    """One file of a directory: ``name`` relative to the prefix, with '/' separators."""

    name: str
    size: int
    sha256: str


def manifest_key(prefix: str) -> str:
    """The manifest's key for the directory whose keys start with ``prefix``."""
    return prefix.rstrip("/") + MANIFEST_SUFFIX


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(folder: str, names: list[str]) -> list[Entry]:
    """Entries for the files ``names`` (relative, '/'-separated) under ``folder``."""
    entries = []
    for name in names:
        path = os.path.join(folder, *name.split("/"))
        entries.append(Entry(name, os.path.getsize(path), sha256_file(path)))
    return entries


def encode(entries: list[Entry]) -> bytes:
    files = [{"name": e.name, "size": e.size, "sha256": e.sha256} for e in entries]
    return json.dumps({"version": MANIFEST_VERSION, "files": files}, indent=0).encode()


def read(stream: jsondoc.Readable, where: str) -> list[Entry]:
    """The entries of the manifest object whose body is ``stream``, read no further than
    MANIFEST_MAX_BYTES."""
    try:
        body = jsondoc.read_capped(stream, MANIFEST_MAX_BYTES, f"the manifest {where}")
    except jsondoc.BadDocument as exc:
        raise BadManifest(str(exc)) from exc
    return decode(body, where)


def decode(body: bytes, where: str) -> list[Entry]:
    """The entries of a manifest; anything malformed is refused, naming ``where``."""
    try:
        doc = jsondoc.parse(body, f"the manifest {where}")
    except jsondoc.BadDocument as exc:
        raise BadManifest(str(exc)) from exc
    if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
        raise BadManifest(f"the manifest {where} is not a version {MANIFEST_VERSION} manifest")
    files = doc.get("files")
    if not isinstance(files, list):
        raise BadManifest(f"the manifest {where} has no list of files")
    return [_entry(f, where) for f in files]


def _entry(item: object, where: str) -> Entry:
    if not isinstance(item, dict):
        raise BadManifest(f"the manifest {where} holds {item!r}, not a file entry")
    name, size, sha = item.get("name"), item.get("size"), item.get("sha256")
    if (
        not isinstance(name, str)
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not isinstance(sha, str)
        or not _HEX64.fullmatch(sha)
    ):
        raise BadManifest(f"the manifest {where} has a malformed entry {item!r}")
    return Entry(name, size, sha)


def mismatch(path: str | os.PathLike, entry: Entry) -> str | None:
    """What differs between the file at ``path`` and its entry, or None."""
    size = os.path.getsize(path)
    if size != entry.size:
        return f"{size} bytes, the manifest says {entry.size}"
    digest = sha256_file(path)
    if digest != entry.sha256:
        return f"SHA-256 {digest}, the manifest says {entry.sha256}"
    return None
