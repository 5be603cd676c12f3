"""The instance's input cache: one download for many jobs (real processes at once), a
corrupt entry dropped and fetched again, least recently used entries evicted, and a full
volume falling back to direct downloads with one warning."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from snakemake_executor_knot.runtime import cache as cache_mod
from snakemake_executor_knot.runtime.cache import InputCache, from_environment, object_key

MIB = 1024 * 1024


def _body(seed: int, size: int = MIB) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32)


def _key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Source:
    """Stands in for S3: writes ``body`` and counts each download in a file, so counts
    from other processes add up."""

    def __init__(self, body: bytes, log: Path, delay: float = 0.0) -> None:
        self.body, self.log, self.delay = body, log, delay

    def __call__(self, path: str) -> None:
        with open(self.log, "a") as handle:
            handle.write("download\n")
        with open(path, "wb") as handle:
            half = len(self.body) // 2
            handle.write(self.body[:half])
            handle.flush()
            time.sleep(self.delay)  # a reader that looked now would see half a file
            handle.write(self.body[half:])

    @property
    def count(self) -> int:
        return self.log.read_text().count("download") if self.log.exists() else 0


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "cache"


def _cache(root: Path, cap: int = 100 * MIB, reserve: int = 0) -> InputCache:
    return InputCache(root, cap, reserve_bytes=reserve)


def test_second_fetch_is_a_hit_without_download(root, tmp_path):
    body = _body(1)
    source = Source(body, tmp_path / "log")
    cache = _cache(root)
    assert cache.fetch(_key(body), len(body), str(tmp_path / "job1" / "in.bin"), source)
    assert cache.fetch(_key(body), len(body), str(tmp_path / "job2" / "in.bin"), source)
    assert source.count == 1
    assert (tmp_path / "job1" / "in.bin").read_bytes() == body
    assert (tmp_path / "job2" / "in.bin").read_bytes() == body
    assert cache.stats.document() == {
        "cache_hits": 1,
        "cache_misses": 1,
        "cache_bypassed": 0,
        "cache_bytes_downloaded": len(body),
        "cache_corrupt": 0,
    }
    assert list((root / "tmp").iterdir()) == []  # nothing half-written left behind


def _job(root: str, body: bytes, log: str, target: str, result: multiprocessing.Queue) -> None:
    cache = InputCache(root, 100 * MIB, reserve_bytes=0)
    ok = cache.fetch(_key(body), len(body), target, Source(body, Path(log), delay=0.5))
    result.put((ok, hashlib.sha256(Path(target).read_bytes()).hexdigest()))


def test_processes_at_once_share_one_download_and_see_whole_files(root, tmp_path):
    body = _body(2, 4 * MIB)
    log = tmp_path / "log"
    InputCache(root, 100 * MIB)  # the folders exist before the jobs race
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()
    jobs = [
        ctx.Process(target=_job, args=(str(root), body, str(log), str(tmp_path / f"j{i}"), results))
        for i in range(4)
    ]
    for job in jobs:
        job.start()
    outcomes = [results.get(timeout=60) for _ in jobs]
    for job in jobs:
        job.join(timeout=60)
        assert job.exitcode == 0
    assert log.read_text().count("download") == 1
    assert outcomes == [(True, hashlib.sha256(body).hexdigest())] * 4


def test_corrupt_entry_is_dropped_and_fetched_again(root, tmp_path, capsys):
    body = _body(3)
    source = Source(body, tmp_path / "log")
    cache = _cache(root)
    cache.fetch(_key(body), len(body), str(tmp_path / "a"), source)
    (entry,) = (root / "entries").glob("*/*")
    entry.chmod(0o644)
    with open(entry, "r+b") as handle:  # one bit flipped on the volume
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 1]))
    assert cache.fetch(_key(body), len(body), str(tmp_path / "b"), source)
    assert (tmp_path / "b").read_bytes() == body
    assert source.count == 2
    assert cache.stats.corrupt == 1
    assert "was corrupt" in capsys.readouterr().err


def test_download_that_does_not_match_its_key_is_not_cached(root, tmp_path, capsys):
    body = _body(4)
    wrong = Source(_body(5), tmp_path / "log")
    cache = _cache(root)
    assert not cache.fetch(_key(body), len(body), str(tmp_path / "a"), wrong)
    assert list((root / "entries").iterdir()) == []
    assert not (tmp_path / "a").exists()
    assert "downloading inputs directly" in capsys.readouterr().err


def test_least_recently_used_entry_is_evicted_under_the_cap(root, tmp_path):
    a, b, c = _body(6), _body(7), _body(8)
    cache = _cache(root, cap=int(2.5 * MIB))
    log = tmp_path / "log"
    cache.fetch(_key(a), MIB, str(tmp_path / "a1"), Source(a, log))
    time.sleep(0.05)
    cache.fetch(_key(b), MIB, str(tmp_path / "b1"), Source(b, log))
    time.sleep(0.05)
    cache.fetch(_key(a), MIB, str(tmp_path / "a2"), Source(a, log))  # a used after b
    time.sleep(0.05)
    cache.fetch(_key(c), MIB, str(tmp_path / "c1"), Source(c, log))
    kept = {p.name for p in (root / "entries").glob("*/*")}
    digest = {hashlib.sha256(x).hexdigest() for x in (a, c)}
    assert kept == digest
    assert log.read_text().count("download") == 3


def test_entry_being_read_is_not_evicted_and_the_job_downloads_directly(root, tmp_path, capsys):
    a, b = _body(9), _body(10)
    cache = _cache(root, cap=int(1.5 * MIB))
    log = tmp_path / "log"
    cache.fetch(_key(a), MIB, str(tmp_path / "a1"), Source(a, log))
    (folder,) = (root / "entries").iterdir()
    reader = os.open(root / "locks" / f"{folder.name}.lock", os.O_RDWR)
    fcntl.flock(reader, fcntl.LOCK_SH)  # another job copying the entry
    try:
        assert not cache.fetch(_key(b), MIB, str(tmp_path / "b1"), Source(b, log))
    finally:
        os.close(reader)
    assert folder.exists()
    assert "is full" in capsys.readouterr().err


def test_full_volume_falls_back_with_one_warning(root, tmp_path, capsys):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    cache = _cache(root, reserve=free + 1)  # no room left above the reserve
    log = tmp_path / "log"
    for seed in (11, 12):
        body = _body(seed)
        assert not cache.fetch(_key(body), MIB, str(tmp_path / str(seed)), Source(body, log))
    assert cache.stats.bypassed == 2
    assert capsys.readouterr().err.count("downloading inputs directly") == 1
    assert not log.exists()


def test_out_of_space_mid_download_falls_back(root, tmp_path, capsys):
    def no_space(path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    body = _body(13)
    assert not _cache(root).fetch(_key(body), MIB, str(tmp_path / "a"), no_space)
    assert list((root / "tmp").iterdir()) == [] and list((root / "entries").iterdir()) == []
    assert "is full" in capsys.readouterr().err


def test_input_larger_than_the_cap_is_fetched_directly(root, tmp_path):
    body = _body(14)
    source = Source(body, tmp_path / "log")
    assert not _cache(root, cap=MIB // 2).fetch(_key(body), MIB, str(tmp_path / "a"), source)
    assert source.count == 0


def test_failed_download_raises_as_a_direct_one_would(root, tmp_path):
    def refused(path: str) -> None:
        raise RuntimeError("403 Forbidden")

    with pytest.raises(RuntimeError):
        _cache(root).fetch(_key(b"x"), MIB, str(tmp_path / "a"), refused)
    assert list((root / "tmp").iterdir()) == []


def test_keys_name_content_or_version():
    assert object_key("b", "k", 5, "ab" * 32, '"e"', "v1") == "sha256:" + "ab" * 32
    assert object_key("b", "k", 5, None, '"e"', "v1") == "version:5:b/k@v1"
    assert object_key("b", "k", 5, None, '"e"', None) == 'etag:5:b/k@"e"'
    assert object_key("b", "k", 5, None, None, None) is None


@pytest.mark.parametrize(
    ("env", "cached"),
    [
        ({}, False),
        ({"KNOT_CACHE_DIR": "X"}, False),
        ({"KNOT_CACHE_DIR": "X", "KNOT_CACHE_BYTES": "0"}, False),
        ({"KNOT_CACHE_DIR": "X", "KNOT_CACHE_BYTES": "lots"}, False),
        ({"KNOT_CACHE_DIR": "X", "KNOT_CACHE_BYTES": "1000"}, True),
    ],
)
def test_cache_from_environment(tmp_path, env, cached):
    env = {k: v.replace("X", str(tmp_path / "c")) for k, v in env.items()}
    found = from_environment(env)
    assert (found is not None) == cached


def test_unwritable_volume_means_no_cache(tmp_path, capsys):
    tmp_path.chmod(0o500)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("running as root: every folder is writable")
        env = {"KNOT_CACHE_DIR": str(tmp_path / "c"), "KNOT_CACHE_BYTES": "1000"}
        assert from_environment(env) is None
    finally:
        tmp_path.chmod(0o700)
    assert "cannot be used" in capsys.readouterr().err


def test_reserve_defaults_to_a_tenth_of_the_volume(root):
    stat = os.statvfs(root.parent)
    expected = max(cache_mod.MIN_RESERVE_BYTES, int(stat.f_blocks * stat.f_frsize * 0.1))
    assert InputCache(root, MIB)._reserve() == expected
