"""The workflow's source files in the image: the folders of modules and included
Snakefiles, inside the working directory or not, and files named by source_path()."""

from __future__ import annotations

import logging

from snakemake_executor_knot.image import sources
from snakemake_executor_knot.image.sources import workflow_files


def _tree(root, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_module_folders_inside_and_outside_the_working_directory(tmp_path):
    work, elsewhere = tmp_path / "wf", tmp_path / "shared" / "mod"
    _tree(work, {"workflow/Snakefile": b"main\n", "modules/m/Snakefile": b"m\n"})
    _tree(work, {"modules/m/scripts/run.sh": b"echo m\n", "notes/n.txt": b"n\n"})
    _tree(elsewhere, {"Snakefile": b"o\n", "data/table.txt": b"t\n", ".git/HEAD": b"x"})
    files = dict(
        workflow_files(work / "workflow", work, [], folders=[work / "modules" / "m", elsewhere])
    )
    outside = ".knot-external" + str(elsewhere.resolve())
    assert files == {
        "workflow/Snakefile": b"main\n",
        "modules/m/Snakefile": b"m\n",
        "modules/m/scripts/run.sh": b"echo m\n",
        f"{outside}/Snakefile": b"o\n",
        f"{outside}/data/table.txt": b"t\n",
    }


def test_files_named_by_source_path_are_shipped_wherever_they_are(tmp_path):
    work = tmp_path / "wf"
    _tree(work, {"nest/sub/Snakefile": b"s\n", "resources/test.txt": b"foo\n"})
    _tree(tmp_path, {"ref/r.txt": b"r\n"})
    named = [str(work / "resources" / "test.txt"), str(tmp_path / "ref" / "r.txt")]
    files = dict(workflow_files(work / "nest" / "sub", work, [], named=named))
    assert files == {
        "nest/sub/Snakefile": b"s\n",
        "resources/test.txt": b"foo\n",
        ".knot-external" + str((tmp_path / "ref" / "r.txt").resolve()): b"r\n",
    }


def test_a_crowded_folder_outside_is_left_out_with_a_notice(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sources, "OUTSIDE_FILES", 3)
    work, home = tmp_path / "wf", tmp_path / "home"
    _tree(work, {"Snakefile": b"s\n"})
    _tree(home, {f"f{i}.txt": b"x" for i in range(5)})
    with caplog.at_level(logging.WARNING, logger="knot"):
        files = dict(workflow_files(work, work, [], folders=[home]))
    assert files == {"Snakefile": b"s\n"}
    assert f"the folder {home.resolve()}" in caplog.text
