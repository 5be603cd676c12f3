"""The instance's input cache: each input object downloaded once per instance, into a host
folder every knot container on the instance mounts, and copied from there into each job.
Standard library only (the caller passes the download).

Layout under the root (``KNOT_CACHE_DIR``, the mount point of the host volume)::

    entries/<name>/<sha256>   one object's bytes; <name> is the SHA-256 of its key
    locks/<name>.lock         flock'ed while the entry is filled (exclusive) or read (shared)
    tmp/                      downloads in progress, renamed into entries/ when whole
    .evict.lock               held while space is counted and entries evicted

A key says what the object is: ``sha256:<hex>`` when its upload recorded the file's
SHA-256 (knot does for large files), else its bucket, key, version id or ETag and size.
An entry holds its content's SHA-256 in its file name, which is checked on every copy
into a job, so a corrupt entry is dropped and fetched again, never used. Only inputs go
through here; outputs never do.

Two containers asking for one object at once: the first takes the entry's lock
exclusively and downloads to ``tmp/``; the second waits on the lock and then finds the
whole entry (a rename is atomic). The cache stays under its cap (``KNOT_CACHE_BYTES``,
from the compute class) by evicting the least recently used entries that no job is
reading, and never takes the file system below ``reserve_bytes`` free. When it cannot
make room, or the volume fails, the job downloads directly, with one warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DIR_ENV = "KNOT_CACHE_DIR"
BYTES_ENV = "KNOT_CACHE_BYTES"
MOUNT_POINT = "/knot-cache"  # where the job definition mounts the host volume
HOST_PATH = "/var/lib/knot-cache"  # the host folder on a Batch instance (launch template)
# Smaller files are fetched directly: one GET costs less than the cache's locking and check.
MIN_BYTES = 8 * 1024 * 1024
# Free space the cache leaves on its file system: a tenth of it, at least 2 GiB (the jobs'
# working directories and images live on the same root volume on Batch).
RESERVE_SHARE = 0.1
MIN_RESERVE_BYTES = 2 * 1024**3
_CHUNK = 8 * 1024 * 1024


class CacheUnusable(Exception):
    """The cache cannot take this object now (full, or its volume failed)."""


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0  # downloads into the cache
    bypassed: int = 0  # direct downloads: full, failed or too small to cache
    bytes_downloaded: int = 0
    corrupt: int = 0
    warnings: list[str] = field(default_factory=list)

    def document(self) -> dict:
        return {
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_bypassed": self.bypassed,
            "cache_bytes_downloaded": self.bytes_downloaded,
            "cache_corrupt": self.corrupt,
        }


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def object_key(
    bucket: str, key: str, size: int, sha256: str | None, etag: str | None, version: str | None
) -> str | None:
    """The cache key of one object: its content's SHA-256 when known, else what names its
    version in S3; None when nothing does (the object cannot be cached)."""
    if sha256:
        return f"sha256:{sha256}"
    if version:
        return f"version:{size}:{bucket}/{key}@{version}"
    if etag:
        return f"etag:{size}:{bucket}/{key}@{etag}"
    return None


def _entry_name(cache_key: str) -> str:
    return hashlib.sha256(cache_key.encode()).hexdigest()


def _expected_sha256(cache_key: str) -> str | None:
    return cache_key[len("sha256:") :] if cache_key.startswith("sha256:") else None


class InputCache:
    """One instance's cache, at ``root``, at most ``cap_bytes`` large."""

    def __init__(self, root: str | os.PathLike, cap_bytes: int, reserve_bytes: int | None = None):
        self.root = Path(root)
        self.cap_bytes = cap_bytes
        self.reserve_bytes = reserve_bytes
        self.stats = Stats()
        for folder in ("entries", "locks", "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    # -- the one entry point -------------------------------------------------------------

    def fetch(
        self, cache_key: str, size: int, target: str, download: Callable[[str], None]
    ) -> bool:
        """Put the object ``cache_key`` (``size`` bytes) at ``target``, through the cache;
        ``download(path)`` fetches it from S3. False when the cache could not serve it (the
        caller downloads directly); a failed download raises, as a direct one would."""
        name = _entry_name(cache_key)
        try:
            for _ in range(2):  # a corrupt entry is dropped and fetched once more
                if self._fetch_once(name, cache_key, size, target, download):
                    return True
        except CacheUnusable as exc:
            self._bypass(str(exc))
            return False
        except OSError as exc:  # the volume itself failed: the job must not
            self._bypass(f"the input cache at {self.root} failed ({exc})")
            return False
        self._bypass(f"the cache entry for {cache_key} was corrupt twice")
        return False

    def _fetch_once(self, name, cache_key, size, target, download) -> bool:
        with self._entry_lock(name) as lock:
            entry = self._entry(name)
            filled = entry is None
            if entry is None:
                entry = self._fill(name, cache_key, size, download)
            fcntl.flock(lock, fcntl.LOCK_SH)  # readers share; the evictor skips it
            os.utime(entry)  # recently used
            if self._copy_checked(entry, cache_key, target):
                self.stats.hits += 0 if filled else 1
                return True
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.stats.corrupt += 1
            _warn(f"knot: cache entry {entry} was corrupt; dropped, fetching it again")
            shutil.rmtree(entry.parent, ignore_errors=True)
            return False

    # -- entries ---------------------------------------------------------------------------

    def _entry(self, name: str) -> Path | None:
        folder = self.root / "entries" / name
        try:
            (found,) = list(folder.iterdir())
        except (FileNotFoundError, ValueError):
            return None
        return found

    def _fill(self, name: str, cache_key: str, size: int, download) -> Path:
        """Download the object into a new entry (under its exclusive lock)."""
        self._make_room(size)
        staging = Path(tempfile.mkdtemp(prefix=name[:16] + ".", dir=self.root / "tmp"))
        try:
            data = staging / "data"
            try:
                download(str(data))
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise CacheUnusable(f"the input cache at {self.root} is full ({exc})") from exc
                raise
            got = sha256_of(data)
            want = _expected_sha256(cache_key)
            if want is not None and got != want:
                raise CacheUnusable(f"the object for {cache_key} downloaded as SHA-256 {got}")
            os.chmod(data, 0o444)
            os.rename(data, staging / got)
            folder = self.root / "entries" / name
            shutil.rmtree(folder, ignore_errors=True)  # a torn entry (a job killed mid-way)
            os.rename(staging, folder)  # atomic: readers see the whole entry or none
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.stats.misses += 1
        self.stats.bytes_downloaded += size
        return folder / got

    def _copy_checked(self, entry: Path, cache_key: str, target: str) -> bool:
        """Copy the entry to ``target`` and check the copy against the entry's SHA-256
        (and the key's, when the key is one); False, and no target, when they differ."""
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        shutil.copyfile(entry, target)
        got = sha256_of(target)
        want = _expected_sha256(cache_key)
        if got == entry.name and (want is None or got == want):
            return True
        os.remove(target)
        return False

    @contextlib.contextmanager
    def _entry_lock(self, name: str) -> Iterator[int]:
        fd = os.open(self.root / "locks" / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # drops the lock

    # -- room --------------------------------------------------------------------------------

    def _make_room(self, size: int) -> None:
        """Evict least recently used entries nobody reads until ``size`` more bytes fit
        under the cap and above the file system's reserve; CacheUnusable when they cannot."""
        if size > self.cap_bytes:
            raise CacheUnusable(
                f"an input of {size:,} bytes is larger than the input cache's cap "
                f"({self.cap_bytes:,} bytes)"
            )
        fd = os.open(self.root / ".evict.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = sorted(self._entries(), key=lambda e: e[1])  # oldest use first
            used = sum(e[2] for e in entries)
            for folder, _, bytes_ in entries:
                if used + size <= self.cap_bytes and self._free() - size >= self._reserve():
                    break
                if self._evict(folder):
                    used -= bytes_
            if used + size > self.cap_bytes or self._free() - size < self._reserve():
                raise CacheUnusable(
                    f"the input cache at {self.root} is full: {used:,} of {self.cap_bytes:,} "
                    f"bytes in use, {self._free():,} bytes free on its volume"
                )
        finally:
            os.close(fd)

    def _entries(self) -> list[tuple[Path, float, int]]:
        found = []
        for folder in (self.root / "entries").iterdir():
            with contextlib.suppress(FileNotFoundError):  # dropped by another job meanwhile
                for data in folder.iterdir():
                    stat = data.stat()
                    found.append((folder, stat.st_mtime, stat.st_size))
        return found

    def _evict(self, folder: Path) -> bool:
        """Remove one entry unless a job holds its lock (filling or reading it)."""
        fd = os.open(self.root / "locks" / f"{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            shutil.rmtree(folder, ignore_errors=True)
            return True
        finally:
            os.close(fd)

    def _free(self) -> int:
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize

    def _reserve(self) -> int:
        if self.reserve_bytes is not None:
            return self.reserve_bytes
        stat = os.statvfs(self.root)
        return max(MIN_RESERVE_BYTES, int(stat.f_blocks * stat.f_frsize * RESERVE_SHARE))

    # -- falling back --------------------------------------------------------------------

    def _bypass(self, why: str) -> None:
        self.stats.bypassed += 1
        if not self.stats.warnings:  # one warning per job
            _warn(f"knot: {why}; downloading inputs directly")
        self.stats.warnings.append(why)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def from_environment(env: dict[str, str] | os._Environ[str] = os.environ) -> InputCache | None:
    """The cache this job may use: None when the job's class has none (no cap set) or the
    volume is not there or not writable, which is then said once."""
    root, cap = env.get(DIR_ENV), env.get(BYTES_ENV)
    if not root or not cap:
        return None
    try:
        cap_bytes = int(cap)
    except ValueError:
        _warn(f"knot: {BYTES_ENV}={cap[:40]!r} is not a number of bytes; no input cache")
        return None
    if cap_bytes <= 0:
        return None
    try:
        return InputCache(root, cap_bytes)
    except OSError as exc:
        _warn(f"knot: the input cache at {root} cannot be used ({exc}); downloading directly")
        return None
