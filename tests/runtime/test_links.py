"""Which link targets the runtime records and the host makes again (runtime/links.py)."""

from __future__ import annotations

import os

import pytest

from snakemake_executor_knot.runtime import links


@pytest.mark.parametrize(
    ("link", "target", "kept"),
    [
        ("out/a.txt", "b.txt", True),
        ("out/a.txt", "../data/b.txt", True),
        ("out/deep/a.txt", "../../b.txt", True),
        ("a.txt", "../b.txt", False),  # above the working directory
        ("out/a.txt", "../../b.txt", False),
        ("out/a.txt", "/etc/passwd", False),  # absolute
        ("out/a.txt", "b\x00c", False),
        ("out/a.txt", "", False),
        ("out/a.txt", "x" * 2000, False),  # too long for S3 metadata
    ],
)
def test_acceptable_targets_are_relative_and_stay_inside(link, target, kept):
    assert links.acceptable(link, target) is kept


def test_the_target_travels_quoted_and_comes_back_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ü b.txt").write_text("x")
    os.symlink("ü b.txt", "l.txt")
    os.symlink("/etc/hostname", "abs.txt")
    recorded = links.link_metadata("l.txt")
    assert recorded["knot-link"].isascii()
    assert links.recorded_target(recorded) == "ü b.txt"
    assert links.link_metadata("abs.txt") == {}
    assert links.link_metadata("ü b.txt") == {}  # not a link
    assert links.recorded_target({"knot-link": "%ff"}) is None  # not UTF-8
    assert links.recorded_target(None) is None


def test_relink_refuses_a_target_through_a_link_that_leaves_the_workdir(tmp_path):
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("s")
    os.symlink(tmp_path, work / "out" / "up")  # a folder link planted earlier
    (work / "out" / "a.txt").write_text("downloaded")
    assert not links.relink(work / "out" / "a.txt", "up/secret.txt", work)
    assert (work / "out" / "a.txt").read_text() == "downloaded"
    (work / "out" / "b.txt").write_text("b")
    assert links.relink(work / "out" / "a.txt", "b.txt", work)
    assert os.readlink(work / "out" / "a.txt") == "b.txt"
