"""Shared by the lock tests: file hashes, a sample lock, rule bases, a stub PyPI, and a run
following a lock with the usual setup."""

from __future__ import annotations

import json
from pathlib import Path

from snakemake_executor_knot.image.base import BaseImage
from snakemake_executor_knot.lock.drift import follow_lock
from snakemake_executor_knot.lock.format import Lock, Pinned, RuleLock
from snakemake_executor_knot.lock.workflow import RuleBasis

SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64
SHA_C = "sha256:" + "c" * 64


def sample_lock() -> Lock:
    return Lock(
        knot="0.1.0",
        platform="linux/amd64",
        python="3.11",
        base_image=BaseImage("python:3.11-slim", SHA_C),
        rules={
            "plot": RuleLock((Pinned("matplotlib", "3.9.2", (SHA_A,)),), "s2"),
            "fit": RuleLock(
                (Pinned("scipy", "1.14.1", (SHA_B, SHA_A)), Pinned("numpy", "2.0", (SHA_C,))),
                "s1",
            ),
        },
    )


BASE = BaseImage("knot-base:py3.11", "sha256:" + "a" * 64)


def fake_pypi(url: str) -> bytes:
    """PyPI's release document with one file, for every release but six's."""
    if "/six/" in url:
        return json.dumps({"urls": []}).encode()
    return json.dumps({"urls": [{"digests": {"sha256": "b" * 64}}]}).encode()


def basis(rule: str, *imports: str, packages: tuple[str, ...] = ()) -> RuleBasis:
    return RuleBasis(rule, None, tuple(imports), packages)


def bases(*items: RuleBasis) -> dict[str, RuleBasis]:
    return {item.rule: item for item in items}


def follow(path: Path, rules: dict, locked: bool = False, **overrides):
    options = {"platform": "linux/amd64", "base_name": BASE.name, "locked": locked, **overrides}
    return follow_lock(path, lambda: rules, **options)
