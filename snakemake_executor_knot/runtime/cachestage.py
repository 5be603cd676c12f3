"""Downloads through the instance's input cache (``cache.py``): which of a job's
downloads it serves, and what it did, for the usage document."""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import digest
from .cache import MIN_BYTES, InputCache, from_environment, object_key

_UNSET = object()
_active: Any = _UNSET  # the process's cache, looked up once (a group's members share it)


def active_cache() -> InputCache | None:
    global _active
    if _active is _UNSET:
        _active = from_environment(os.environ)
    return _active


def reset() -> None:
    """Forget the cache looked up (tests change the environment)."""
    global _active
    _active = _UNSET


def serve(manager: Any, transfers: list) -> list:
    """Fetch the cacheable ``transfers`` through the cache; the rest (small files, objects
    the cache could not take) are returned, for a direct download."""
    cache = active_cache()
    if cache is None:
        return transfers
    direct = []
    for transfer in transfers:
        if not _through_cache(cache, manager, transfer):
            direct.append(transfer)
    return direct


def _through_cache(cache: InputCache, manager: Any, transfer: Any) -> bool:
    found = _identity(manager.client, transfer)
    if found is None:
        return False
    cache_key, size, version = found
    extra = {"VersionId": version} if version else None

    def download(path: str) -> None:
        manager.download(transfer.bucket, transfer.key, path, extra_args=extra).result()

    return cache.fetch(cache_key, size, transfer.path, download)


def _identity(s3: Any, transfer: Any) -> tuple[str, int, str | None] | None:
    """The object's cache key, size and version id; None when it is too small to cache or
    cannot be asked about (the direct download then says what is wrong)."""
    expected = transfer.expected  # a manifest's entry: size and SHA-256 known
    if expected is not None:
        if expected.size < MIN_BYTES:
            return None
        return f"sha256:{expected.sha256}", expected.size, None
    try:
        head = s3.head_object(Bucket=transfer.bucket, Key=transfer.key)
    except (BotoCoreError, ClientError):
        return None
    size = head.get("ContentLength")
    if not isinstance(size, int) or size < MIN_BYTES:
        return None
    version = head.get("VersionId")
    version = version if isinstance(version, str) and version != "null" else None
    sha256 = digest.recorded(head.get("Metadata"))
    if sha256 is not None and not digest.is_sha256(sha256):
        return None  # malformed: the direct download's whole-file check reports it
    cache_key = object_key(transfer.bucket, transfer.key, size, sha256, head.get("ETag"), version)
    return (cache_key, size, version) if cache_key else None


def usage_fields() -> dict:
    """What the cache did for this job, for its usage document ({} without a cache)."""
    cache = _active if _active is not _UNSET else None
    return cache.stats.document() if cache is not None else {}
