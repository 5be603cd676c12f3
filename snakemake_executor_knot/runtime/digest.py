"""A large file's own SHA-256: recorded in its object's metadata at upload, checked after
download. Host and runtime both use it; standard library only.

S3's checksums cannot vouch for every transfer. A multipart upload stores a checksum of
the parts' checksums (type COMPOSITE), and a ranged GET of one part carries no checksum at
all, so botocore validates neither. knot uploads files from WHOLE_CHECK_BYTES on in parts
(the runtime's transfers do; the host's from a larger size) and reads them back in ranged
parts, so for those files the uploader records the file's SHA-256 and the downloader hashes
what it wrote and compares. Smaller files travel in one PUT and one GET, which S3's stored
whole-object checksum covers.
"""

from __future__ import annotations

import os
import re

from .contract import DIGEST_METADATA, WHOLE_CHECK_BYTES
from .manifest import sha256_file

_HEX64 = re.compile(r"[0-9a-f]{64}")


def needs_digest(path: str | os.PathLike) -> bool:
    return os.path.getsize(path) >= WHOLE_CHECK_BYTES


def upload_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The object metadata that records the file's SHA-256, when its size calls for one."""
    return {DIGEST_METADATA: sha256_file(path)} if needs_digest(path) else {}


def is_sha256(value: str) -> bool:
    return bool(_HEX64.fullmatch(value))


def recorded(metadata: dict | None) -> str | None:
    """The SHA-256 an upload recorded in ``metadata`` (HeadObject's), or None."""
    value = (metadata or {}).get(DIGEST_METADATA)
    return value if isinstance(value, str) else None


def mismatch(path: str | os.PathLike, metadata: dict | None) -> str | None:
    """What is wrong with a downloaded file that needs a whole-file check, or None. A file
    without a recorded digest is the caller's to judge (``recorded`` tells)."""
    want = recorded(metadata)
    if want is None:
        return None
    if not _HEX64.fullmatch(want):
        return f"its recorded SHA-256 {want[:80]!r} is malformed"
    got = sha256_file(path)
    if got != want:
        return f"SHA-256 {got}, the upload recorded {want}"
    return None
