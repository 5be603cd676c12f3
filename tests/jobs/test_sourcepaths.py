"""Files named through workflow.source_path(), under the name a job sees them by."""

from __future__ import annotations

from snakemake.io import sourcecache_entry
from snakemake.iocontainers import Params

from snakemake_executor_knot.jobs.sourcepaths import (
    job_files,
    job_params,
    job_value,
    named_source_files,
    source_name,
)
from snakemake_executor_knot.jobs.spec import build_spec
from tests.conftest import fake_job, named

CACHE = "/root/.cache/snakemake/source-cache/snakemake-runtime-cache/tmpab12/file"


def cached(original: str):
    """What workflow.source_path() returns: the host cache's copy, flagged with the file."""
    return sourcecache_entry(f"{CACHE}{original}", original)


def test_a_source_file_inside_the_working_directory_is_its_relative_path(tmp_path):
    value = cached(str(tmp_path / "workflow" / "resources" / "t.txt"))
    assert job_value(value, tmp_path) == "workflow/resources/t.txt"


def test_a_source_file_outside_it_lies_under_the_external_folder(tmp_path):
    module = tmp_path.parent / "modules" / "m" / "data.txt"
    assert job_value(cached(str(module)), tmp_path) == ".knot-external" + str(module)
    assert source_name(str(module), tmp_path) == ".knot-external" + str(module)


def test_other_values_and_remote_sources_are_left_alone(tmp_path):
    assert job_value("plain.txt", tmp_path) == "plain.txt"
    assert job_value(3, tmp_path) == 3
    remote = sourcecache_entry(f"{CACHE}/x", "https://github.com/o/r/raw/v1/x.txt")
    assert job_value(remote, tmp_path) == remote


def test_an_absolute_path_inside_the_working_directory_is_there_in_the_job(tmp_path):
    """A param built from the Snakefile's folder (Path(workflow.snakefile).parent / "x"),
    as Snakemake's test_module_worfklow_namespacing builds one, names the same file in the
    job; paths elsewhere and relative ones are left alone."""
    assert job_value(str(tmp_path / "module-test" / "some file.txt"), tmp_path) == (
        "/work/module-test/some file.txt"
    )
    assert job_value(str(tmp_path), tmp_path) == "/work"
    assert job_value(str(tmp_path / "a" / ".." / "b.txt"), tmp_path) == "/work/b.txt"
    for value in ("/etc/hosts", str(tmp_path.parent / "elsewhere"), "rel/x.txt", "-v /x"):
        assert job_value(value, tmp_path) == value


def test_params_keep_their_names_and_the_job_s_own_are_untouched(tmp_path):
    table = cached(str(tmp_path / "res" / "table.txt"))
    params = named(Params, {"table": table, "n": 2})
    mapped = job_params(params, tmp_path)
    assert (mapped.table, mapped.n, list(mapped)) == ("res/table.txt", 2, ["res/table.txt", 2])
    assert params.table == table
    plain = named(Params, {"n": 2})
    assert job_params(plain, tmp_path) is plain


def test_named_source_files_are_the_originals(tmp_path):
    table = str(tmp_path / "res" / "table.txt")
    assert named_source_files([cached(table), "other.txt", 1]) == {table}


def test_the_spec_names_the_file_where_the_job_has_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = cached(str(tmp_path / "res" / "table.txt"))
    job = fake_job(params={"table": table}, input={"ref": table}, output=["out.txt"])
    spec = build_spec(job, "shell", lambda path: f"s3://b/files/{path}")
    assert spec["params"]["items"] == ["res/table.txt"]
    # The input travels from the workflow's file, not from Snakemake's temporary copy.
    assert spec["input"]["items"][0]["path"] == "res/table.txt"
    assert spec["input"]["items"][0]["uri"] == "s3://b/files/res/table.txt"


def test_a_job_s_files_by_the_names_its_container_gives_them(tmp_path, monkeypatch):
    from snakemake.iocontainers import InputFiles

    monkeypatch.chdir(tmp_path)  # Snakemake's working directory, which relative paths mean

    table = cached(str(tmp_path / "res" / "table.txt"))
    outside = str(tmp_path.parent / "ref" / "genome.fa")
    files = named(
        InputFiles,
        {"table": table, "ref": outside, "up": "../x.txt", "here": "data/a.txt",
         "absolute_here": str(tmp_path / "data" / "b.txt")},
    )  # fmt: skip
    renamed = job_files(files, tmp_path)
    assert list(renamed) == [
        "res/table.txt",
        "/work/.knot-external" + outside,
        "/work/.knot-external" + str(tmp_path.parent / "x.txt"),
        "data/a.txt",
        "data/b.txt",
    ]
    assert renamed.ref == "/work/.knot-external" + outside
