"""knot.lock against the workflow of now: check_lock's sentences, and a run following,
refreshing or refusing the lock (--knot-locked); no network (hashes are stubbed)."""

from __future__ import annotations

import logging

import pytest

from snakemake_executor_knot import __version__
from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.image.base import BaseImage
from snakemake_executor_knot.lock.drift import check_lock
from snakemake_executor_knot.lock.format import read_lock

from .helpers import SHA_A, SHA_C, bases, basis, fake_pypi, follow, sample_lock

# ---------------------------------------------------------------- drift


def test_check_lock_finds_nothing_when_everything_matches():
    now = {"fit": "s1", "plot": "s2"}
    assert check_lock(sample_lock(), knot_version="0.1.0", platform="linux/amd64", rules=now) == []


def test_check_lock_finds_each_kind_of_drift():
    problems = check_lock(
        sample_lock(),
        knot_version="0.2.0",
        platform="linux/arm64",
        rules={"fit": "changed", "new_a": "x", "new_b": "y"},
        python="3.12",
        base_image=BaseImage("python:3.11-slim", SHA_A),
    )
    assert problems == [
        "knot.lock was written for knot 0.1.0, but this run uses knot 0.2.0.",
        "knot.lock was written for platform linux/amd64, but this run uses platform linux/arm64.",
        "knot.lock was written for python 3.11, but this run uses python 3.12.",
        f"knot.lock was written for base image python:3.11-slim ({SHA_C}), but this run "
        f"uses python:3.11-slim ({SHA_A}).",
        "knot.lock lacks rules 'new_a', 'new_b', which the workflow has.",
        "knot.lock has rule 'plot', which the workflow no longer has.",
        "The requirements of rule 'fit' may have changed since knot.lock was written: their "
        "source differs.",
    ]


# ---------------------------------------------------------------- following


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


def test_locked_refuses_added_and_removed_rules(lock_file):
    rules = bases(basis("a", "scipy", packages=("scipy",)), basis("c"))
    with pytest.raises(ConfigError) as error:
        follow(lock_file, rules, locked=True)
    assert "lacks rule 'c'" in str(error.value) and "has rule 'b'" in str(error.value)


def test_drift_refreshes_only_what_changed_with_a_notice(lock_file, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="knot")
    old = read_lock(lock_file)
    rules = bases(basis("b"), basis("c", packages=("packaging",)))
    monkeypatch.setattr("snakemake_executor_knot.lock.closure._fetch", fake_pypi)
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
