"""The one containment check every writer uses, against hostile keys and spec paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakemake_executor_knot.runtime.paths import UnsafePath, contained, inside

HOSTILE = {
    "": "names no file",
    ".": "names no file",
    "./": "names no file",
    "/etc/passwd": "absolute",
    "//abs": "absolute",
    "../evil": "'..' part",
    "a/../../evil": "'..' part",
    "a/b/..": "'..' part",
    "..": "'..' part",
    "a\x00b": "NUL byte",
}


@pytest.mark.parametrize("relative", sorted(HOSTILE))
def test_hostile_paths_are_refused_naming_key_and_destination(tmp_path, relative):
    with pytest.raises(UnsafePath, match=HOSTILE[relative]) as caught:
        contained(tmp_path, relative, what="the key s3://b/p/x")
    assert "the key s3://b/p/x" in str(caught.value)
    assert str(tmp_path.resolve()) in str(caught.value)


def test_plain_paths_stay_inside(tmp_path):
    root = tmp_path.resolve()
    assert contained(tmp_path, "a/b.txt") == root / "a" / "b.txt"
    assert contained(tmp_path, "./a//b.txt") == root / "a" / "b.txt"
    assert contained(tmp_path, "..a/b..") == root / "..a" / "b.."
    assert contained(tmp_path, ".snakemake/storage/s3/b/k") == root / ".snakemake/storage/s3/b/k"


def test_symlinks_out_of_root_are_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "door").symlink_to(outside)
    (root / "file").symlink_to(outside / "target")
    (root / "inner").symlink_to(root / "sub")
    with pytest.raises(UnsafePath, match="symbolic link"):
        contained(root, "door/x")
    with pytest.raises(UnsafePath, match="symbolic link"):
        contained(root, "file")
    assert contained(root, "inner/x") == root.resolve() / "inner" / "x"


def test_inside_resolves_links(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "out").symlink_to(tmp_path)
    assert inside(tmp_path / "w", tmp_path / "w" / "a.txt")
    assert not inside(tmp_path / "w", tmp_path / "w" / ".." / "a.txt")
    assert not inside(tmp_path / "w", tmp_path / "w" / "out" / "a.txt")


PART = st.sampled_from(["..", ".", "", "a", "b c", "\x00", "/", "\\", "~", "é"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.one_of(PART, st.text(max_size=4)), max_size=6))
def test_any_key_lands_inside_root_or_is_refused(tmp_path_factory, parts):
    root = tmp_path_factory.mktemp("root").resolve()
    relative = "/".join(parts)
    try:
        target = contained(root, relative)
    except UnsafePath:
        return
    assert root in target.parents
    assert os.path.commonpath([root, os.path.realpath(target)]) == str(root)
    assert Path(os.path.normpath(target)) == target  # no '..' or '.' left to resolve later
