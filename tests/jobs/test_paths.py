"""The host's checks of a job's paths, before anything is created: UTF-8 names, outputs
inside the working directory, symbolic links inside directory inputs."""

from __future__ import annotations

import os

import pytest

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.jobs.paths import check_job_paths, directory_files

from ..conftest import fake_job

BAD_NAME = os.fsdecode(b"sub-\xff.txt")  # what os.listdir returns for a Latin-1 name


@pytest.fixture
def work(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "work"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"output": ["../out.txt"]}, "output '../out.txt' lies outside"),
        ({"output": ["/tmp/elsewhere/out.txt"]}, "lies outside the working directory"),
        ({"log": ["logs/../../r.log"]}, "log 'logs/../../r.log' lies outside"),
        ({"output": [BAD_NAME]}, r"output file name 'sub-\\xff.txt' is not valid UTF-8"),
        ({"input": [BAD_NAME]}, "input file name .* not valid UTF-8"),
        ({"output": ["res/d.knot-manifest.json"]}, "output file name .* ends in '.knot-manif"),
        ({"input": ["d.knot-manifest.json"]}, "input file name .* which knot keeps"),
    ],
)
def test_bad_paths_are_rule_errors(work, files, expected):
    with pytest.raises(RuleError, match=f"Rule 'fit': .*{expected}"):
        check_job_paths(fake_job(**files), work)


def test_inputs_outside_and_outputs_inside_are_allowed(work, tmp_path):
    (tmp_path / "ref.fa").write_text(">x\n")
    job = fake_job(input=["../ref.fa", str(tmp_path / "ref.fa")], output=[str(work / "o.txt")])
    check_job_paths(job, work)


def test_output_through_a_link_out_of_workdir_is_refused(work, tmp_path):
    (work / "out").symlink_to(tmp_path)
    with pytest.raises(RuleError, match="symbolic link"):
        check_job_paths(fake_job(output=["out/x.txt"]), work)


def test_links_in_a_directory_input(work, tmp_path):
    (tmp_path / "secret.txt").write_text("s")
    (work / "shared.txt").write_text("shared")
    data = work / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "b.txt").write_text("b")
    (data / "to_workdir.txt").symlink_to(work / "shared.txt")
    (data / "loop").symlink_to(data)  # inside the directory: followed once, no endless walk
    found = [p.relative_to(data).as_posix() for p in directory_files(data, work, "fit")]
    assert found == ["sub/b.txt", "to_workdir.txt"]

    (data / "escape.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(RuleError, match="Rule 'fit': .*escape.txt -> .*secret.txt, outside"):
        check_job_paths(fake_job(input=["data"]), work)
    (data / "escape.txt").unlink()
    (data / "dangling").symlink_to(work / "missing")
    with pytest.raises(RuleError, match="broken symbolic link"):
        directory_files(data, work, "fit")


def test_directory_input_outside_workdir_may_link_inside_itself(work, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "g.fa").write_text(">g\n")
    (ref / "alias.fa").symlink_to(ref / "g.fa")
    assert [p.name for p in directory_files(ref, work, "fit")] == ["alias.fa", "g.fa"]
