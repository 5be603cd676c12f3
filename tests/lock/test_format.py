"""knot.lock's file: writing and reading it back (byte-stable, round trip), every kind of
malformed file, and the requirements.txt lines of a locked rule."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.lock.format import (
    HEADER,
    BaseImage,
    Lock,
    Pinned,
    RuleLock,
    read_lock,
    requirements_lines,
    write_lock,
)

from .helpers import SHA_A, SHA_B, SHA_C, sample_lock

# ---------------------------------------------------------------- lock file


def test_write_then_read_gives_the_same_lock(tmp_path):
    path = tmp_path / "knot.lock"
    write_lock(path, sample_lock())
    assert read_lock(path) == sample_lock()


def test_written_file_is_stable_and_readable(tmp_path):
    path = tmp_path / "knot.lock"
    write_lock(path, sample_lock())
    text = path.read_text()
    assert text.startswith(HEADER)
    assert text.splitlines()[1:6] == [
        "version: 1",
        "knot: 0.1.0",
        "platform: linux/amd64",
        "python: '3.11'",
        "base_image:",
    ]
    # Rules sorted by name, requirements by canonical name; "2.0" stays a string.
    assert text.index("fit:") < text.index("plot:")
    assert text.index("name: numpy") < text.index("name: scipy")
    assert "version: '2.0'" in text
    write_lock(tmp_path / "again.lock", sample_lock())
    assert (tmp_path / "again.lock").read_text() == text


yaml_tricky = st.sampled_from(["yes", "null", "3.10", "2.0", "- x", "a: b", "#c", "", "~"])
texts = st.one_of(yaml_tricky, st.text(st.characters(exclude_categories=("Cs",)), max_size=12))
digests = st.binary(max_size=8).map(lambda b: "sha256:" + hashlib.sha256(b).hexdigest())
pins = st.builds(Pinned, texts, texts, st.lists(digests, max_size=3).map(tuple))
rule_locks = st.builds(
    RuleLock,
    st.lists(pins, max_size=4, unique_by=lambda pin: pin.name).map(tuple),
    texts,
)
locks = st.builds(
    Lock,
    knot=texts,
    platform=texts,
    python=texts,
    base_image=st.builds(BaseImage, texts, texts),
    rules=st.dictionaries(texts, rule_locks, max_size=3),
)


@settings(deadline=None)  # writes files; a loaded machine is slow, not wrong
@given(locks)
def test_round_trip_property(lock):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "knot.lock")
        write_lock(path, lock)
        assert read_lock(path) == lock


def write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "knot.lock"
    path.write_text(text)
    return path


def valid_text(tmp_path: Path) -> str:
    write_lock(tmp_path / "valid.lock", sample_lock())
    return (tmp_path / "valid.lock").read_text()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t + "rules: [unclosed\n", "is not valid YAML"),
        (lambda t: "- just\n- a list\n", "where the file should be a mapping"),
        (lambda t: t.replace("\nversion: 1\n", "\nversion: 2\n"), "format version 2"),
        (lambda t: t.replace("\nversion: 1\n", "\nversion: '1'\n"), "format version '1'"),
        (lambda t: t.replace("\nversion: 1\n", "\nversion: true\n"), "format version True"),
        (lambda t: t.replace("knot: 0.1.0\n", ""), "lacks key(s) knot in the file"),
        (lambda t: "version: 2\nsomething: else\n", "format version 2; this knot reads version 1"),
        (lambda t: t.replace("version: 1\n", ""), "format version None"),
        (lambda t: t.replace("version: '2.0'", "version: 2.0"), "float 2.0 where rules.fit"),
        (lambda t: t.replace("source: s1", "source: [s1]"), "rules.fit.source should be a str"),
        (lambda t: t.replace("    hashes:", "    hash:", 1), "lacks key(s) hashes in rules.fit"),
        (lambda t: t.replace("source: s1", "source: s1\n    notes: x"), "unknown key(s) notes"),
        (lambda t: t.replace("a" * 64, "a" * 10, 1), "not sha256:<64 hex digits>"),
        (lambda t: t[: t.index("rules:")] + "rules: 3\n", "int 3 where rules should be"),
        (lambda t: t.replace("  digest: ", "  digest: 5 #"), "int 5 where base_image.digest"),
    ],
)
def test_bad_lock_file_is_a_config_error(tmp_path, edit, expected):
    path = write_text(tmp_path, edit(valid_text(tmp_path)))
    with pytest.raises(ConfigError) as info:
        read_lock(path)
    assert expected in str(info.value)
    assert str(info.value).startswith(str(path))
    assert "Run 'knot lock' again" in str(info.value)


def test_duplicate_distribution_in_a_rule_is_a_config_error(tmp_path):
    text = valid_text(tmp_path).replace("name: scipy", "name: numpy")
    with pytest.raises(ConfigError, match="lists a distribution twice in rules.fit"):
        read_lock(write_text(tmp_path, text))


def test_missing_lock_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        read_lock(tmp_path / "absent.lock")


# ---------------------------------------------------------------- requirements.txt


def test_requirements_lines_with_hashes():
    text, hashed = requirements_lines(
        [Pinned("scipy", "1.14.1", (SHA_B, SHA_A)), Pinned("numpy", "2.1.3", (SHA_C,))]
    )
    assert hashed is True
    assert text == (f"numpy==2.1.3 --hash={SHA_C}\nscipy==1.14.1 --hash={SHA_A} --hash={SHA_B}\n")


def test_requirements_lines_drop_all_hashes_when_one_pin_lacks_them():
    text, hashed = requirements_lines(
        [Pinned("scipy", "1.14.1", (SHA_A,)), Pinned("numpy", "2.1.3")]
    )
    assert (text, hashed) == ("numpy==2.1.3\nscipy==1.14.1\n", False)


def test_requirements_lines_of_nothing():
    assert requirements_lines([]) == ("", False)
