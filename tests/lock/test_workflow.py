"""knot.lock in a run: drift against the Snakefile, refresh or --knot-locked, the checks a
refresh cannot fix, and the locked requirement lines; no network (hashes are stubbed)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from snakemake_executor_knot import __version__
from snakemake_executor_knot.cli.lock import load_workflow
from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.lock.format import BaseImage, read_lock, write_lock
from snakemake_executor_knot.lock.workflow import (
    HashCache,
    RuleBasis,
    build_lock,
    follow_lock,
    locked_lines,
    static_values,
)

BASE = BaseImage("knot-base:py3.11", "sha256:" + "a" * 64)
HASH = "sha256:" + "b" * 64


def fake_pypi(url: str) -> bytes:
    """PyPI's release document with one file, for every release but six's."""
    if "/six/" in url:
        return json.dumps({"urls": []}).encode()
    return json.dumps({"urls": [{"digests": {"sha256": "b" * 64}}]}).encode()


def basis(rule: str, *imports: str, packages: tuple[str, ...] = ()) -> RuleBasis:
    return RuleBasis(rule, None, tuple(imports), packages)


def bases(*items: RuleBasis) -> dict[str, RuleBasis]:
    return {item.rule: item for item in items}


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


def follow(path: Path, rules: dict, locked: bool = False, **overrides):
    options = {"platform": "linux/amd64", "base_name": BASE.name, "locked": locked, **overrides}
    return follow_lock(path, lambda: rules, **options)


def test_lock_of_scipy_pins_numpy_and_runtime_with_hashes(lock_file):
    lock = read_lock(lock_file)
    names = {pin.name for pin in lock.rules["a"].requirements}
    assert {"scipy", "numpy", "boto3", "botocore", "s3transfer"} <= names
    lines, hashed = locked_lines(lock, "a")
    assert all(" --hash=" in line for line in lines) is hashed
    # six (via python-dateutil) had no hash on the stub index: hash mode is off for all.
    assert "six" in {pin.name for pin in lock.rules["b"].requirements}
    assert not hashed and not any("--hash" in line for line in lines)


def test_matching_lock_is_followed_as_it_is(lock_file):
    before = lock_file.read_bytes()
    rules = bases(basis("a", "scipy", packages=("scipy",)), basis("b"))
    lock = follow(lock_file, rules, locked=True)
    assert lock == read_lock(lock_file) and lock_file.read_bytes() == before


def test_no_lock_file_builds_as_before_unless_locked(tmp_path):
    assert follow(tmp_path / "knot.lock", {}) is None
    with pytest.raises(ConfigError, match="--knot-locked is set, but there is no .*knot lock"):
        follow(tmp_path / "knot.lock", {}, locked=True)


def test_locked_refuses_changed_imports_naming_rule_and_change(lock_file):
    before = lock_file.read_bytes()
    rules = bases(basis("a", "scipy", "yaml", packages=("scipy",)), basis("b"))
    with pytest.raises(ConfigError) as error:
        follow(lock_file, rules, locked=True)
    text = str(error.value)
    assert "--knot-locked" in text and "rule 'a'" in text and "'a' now imports scipy, yaml" in text
    assert lock_file.read_bytes() == before  # nothing the user made is overwritten


def test_a_numpy_value_pins_numpy_and_its_change_is_drift(lock_file):
    needs_numpy = RuleBasis("b", None, values=("numpy",))
    assert needs_numpy.source != basis("b").source
    lock = build_lock(
        bases(needs_numpy),
        platform="linux/amd64",
        base_image=BASE,
        hashes=HashCache(fetch=fake_pypi),
    )
    assert "numpy" in {pin.name for pin in lock.rules["b"].requirements}
    with pytest.raises(ConfigError, match="'b' now imports nothing.*its values need numpy"):
        follow(lock_file, bases(basis("a", "scipy", packages=("scipy",)), needs_numpy), locked=True)


def test_static_values_read_written_params_and_config(tmp_path):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        "import numpy as np\n"
        "rule typed:\n    output: 'a'\n    params: n=np.int64(3), f=lambda wc: np.int64(1)\n"
        "    run:\n        pass\n"
        "rule plain:\n    output: 'b'\n    params: n=3\n    run:\n        pass\n"
    )
    workflow = load_workflow(snakefile)
    rules = {rule.name: rule for rule in workflow.rules}
    assert static_values({})(rules["typed"]) == {"numpy"}
    assert static_values({})(rules["plain"]) == set()
    assert static_values({"when": Decimal("1.5")})(rules["plain"]) == set()  # stdlib


def test_locked_refuses_added_and_removed_rules(lock_file):
    rules = bases(basis("a", "scipy", packages=("scipy",)), basis("c"))
    with pytest.raises(ConfigError) as error:
        follow(lock_file, rules, locked=True)
    assert "lacks rule 'c'" in str(error.value) and "has rule 'b'" in str(error.value)


def test_drift_refreshes_only_what_changed_with_a_notice(lock_file, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="knot")
    old = read_lock(lock_file)
    rules = bases(basis("b"), basis("c", packages=("packaging",)))
    monkeypatch.setattr("snakemake_executor_knot.lock.format._fetch", fake_pypi)
    fresh = follow(lock_file, rules)
    assert fresh == read_lock(lock_file)
    assert fresh.rules["b"] == old.rules["b"] and set(fresh.rules) == {"b", "c"}
    assert "packaging" in {pin.name for pin in fresh.rules["c"].requirements}
    [notice] = [r.getMessage() for r in caplog.records if "refreshed" in r.getMessage()]
    assert "re-pinned: c; dropped: a" in notice


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            {"platform": "linux/arm64"},
            "platform linux/amd64, but this run uses platform linux/arm64",
        ),
        ({"base_name": "python:3.11-slim"}, "base image knot-base:py3.11, but this run uses"),
    ],
)
def test_lock_for_another_platform_or_base_is_an_error(lock_file, edit, expected):
    rules = bases(basis("a", "scipy", packages=("scipy",)), basis("b"))
    with pytest.raises(ConfigError, match="does not fit this run") as error:
        follow(lock_file, rules, **edit)
    assert expected in str(error.value) and "knot lock" in str(error.value)


def test_lock_of_another_knot_version_is_an_error(lock_file):
    lock_file.write_text(lock_file.read_text().replace(f"knot: {__version__}", "knot: 0.0.1"))
    with pytest.raises(ConfigError, match=f"knot 0.0.1, but this run uses knot {__version__}"):
        follow(lock_file, {}, locked=False)


def test_corrupt_lock_is_an_error_and_kept(lock_file):
    lock_file.write_text("version: 1\nrules: [oops\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        follow(lock_file, {})
    assert lock_file.read_text() == "version: 1\nrules: [oops\n"


def test_hash_cache_fetches_each_release_once_and_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger="knot")
    seen = []

    def fetch(url: str) -> bytes:
        seen.append(url)
        return fake_pypi(url)

    rules = bases(basis("a"), basis("b"))
    build_lock(rules, platform="linux/amd64", base_image=BASE, hashes=HashCache(fetch=fetch))
    assert len(seen) == len(set(seen))
    warnings = [r.getMessage() for r in caplog.records if "no hashes" in r.getMessage()]
    assert len(warnings) == 1 and "six==" in warnings[0]
