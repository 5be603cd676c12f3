"""The lock tests' fixtures: a lock of scipy built once per module, and its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakemake_executor_knot.lock.format import write_lock
from snakemake_executor_knot.lock.workflow import HashCache, build_lock

from .helpers import BASE, bases, basis, fake_pypi


@pytest.fixture(scope="module")
def scipy_lock():
    """A lock of rules 'a' (knot_packages scipy) and 'b' (nothing but knot's runtime)."""
    rules = bases(basis("a", "scipy", packages=("scipy",)), basis("b"))
    return build_lock(
        rules, platform="linux/amd64", base_image=BASE, hashes=HashCache(fetch=fake_pypi)
    )


@pytest.fixture
def lock_file(tmp_path, scipy_lock) -> Path:
    path = tmp_path / "knot.lock"
    write_lock(path, scipy_lock)
    return path
