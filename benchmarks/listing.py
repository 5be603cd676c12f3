"""ListObjects on the emulator's S3 as a bucket fills (issue 22): CPU time of one prefix
listing (a prefix holding one key, as the S3 storage plugin asks for each output) against
moto's own scan, in buckets of growing size. moto's backend is called in-process, so the
numbers are the listing itself, not HTTP; CPU time (process_time), so other load on the
machine does not enter."""

from __future__ import annotations

import time

from moto.s3.models import S3Backend, s3_backends

from snakemake_executor_knot.emulator.patches.s3 import patch_sorted_listing

from .report import Row

SIZES = (1_000, 10_000, 30_000)
LISTINGS = 200
ACCOUNT = "123456789012"


def _fill(backend: S3Backend, name: str, keys: int) -> None:
    backend.create_bucket(name, "us-east-1")
    for i in range(keys):
        backend.put_object(name, f"runs/out/{i:06d}.txt", b"x")


def _cpu_ms_per_listing(backend: S3Backend, name: str, keys: int) -> float:
    bucket = backend.get_bucket(name)
    start = time.process_time()
    for i in range(LISTINGS):
        prefix = f"runs/out/{(i * 7919) % keys:06d}"
        listed = backend.list_objects_v2(bucket, prefix, "/", None, None, 1000)[0]
        assert len(listed) == 1
    return 1000 * (time.process_time() - start) / LISTINGS


def listing_rows() -> list[Row]:
    patch_sorted_listing()
    backend = s3_backends[ACCOUNT]["aws"]
    indexed = S3Backend.list_objects
    scan = S3Backend._knot_scan_listing  # type: ignore[attr-defined]
    rows = []
    for keys in SIZES:
        name = f"knot-listing-{keys}"
        _fill(backend, name, keys)
        fast = _cpu_ms_per_listing(backend, name, keys)
        S3Backend.list_objects = scan  # type: ignore[method-assign]
        try:
            slow = _cpu_ms_per_listing(backend, name, keys)
        finally:
            S3Backend.list_objects = indexed  # type: ignore[method-assign]
        backend.buckets.pop(name)
        rows.append(Row("emulator S3 listing", f"CPU per prefix listing, {keys:,} keys (ms)",
                        fast, slow, "moto's scan"))  # fmt: skip
    return rows
