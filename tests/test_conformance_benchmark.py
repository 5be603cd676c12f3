"""The conformance benchmark's pure parts: reading upstream tests into command lines,
judging outputs against expected results, and reading a failed run's log."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from benchmarks.conformance import (
    Case,
    Outcome,
    Result,
    classify,
    compare,
    first_error,
    judge,
    knot_args,
    read_cases,
    read_local,
    select,
    summarize,
)

UPSTREAM = '''
import pytest
from .common import run, dpath, connected

def test_plain():
    run(dpath("wf_a"), targets=["x.txt", "y.txt"], config={"n": 2, "name": "b"}, cores=1)

def test_defaults():
    """A docstring is not a statement that matters."""
    run(dpath("wf_a"), forceall=True, cleanup=False, nodes=4)

def test_fails():
    run(dpath("wf_a"), shouldfail=True)

def test_split_targets():
    run(dpath("wf_a"), targets="a b".split(), check_md5=False)

@connected
def test_online():
    run(dpath("wf_a"))

def test_more():
    tmp = run(dpath("wf_a"), cleanup=False)
    assert tmp

def test_cli():
    run(dpath("wf_a"), shellcmd="snakemake -c1 --set-threads a=2 -- done.txt")

def test_redirect():
    run(dpath("wf_a"), shellcmd="snakemake --dryrun > stats.txt")

def test_report():
    run(dpath("wf_a"), report="report.html")

def test_computed():
    run(dpath("wf_a"), shouldfail=WorkflowError)

def test_absent():
    run(dpath("wf_gone"))

def test_no_run():
    assert True
'''


@pytest.fixture
def upstream(tmp_path) -> Path:
    (tmp_path / "wf_a" / "expected-results").mkdir(parents=True)
    (tmp_path / "tests.py").write_text(textwrap.dedent(UPSTREAM))
    return tmp_path


def test_tests_map_to_command_lines_or_say_why_not(upstream):
    cases = {case.name: case for case in read_cases(upstream)}
    assert "test_no_run" not in cases
    plain = cases["test_plain"]
    assert plain.folder == "wf_a" and not plain.skip
    assert plain.args == ["--cores", "1", "--config", "n=2", "name=b", "--", "x.txt", "y.txt"]
    assert cases["test_defaults"].args == ["--cores", "3", "--forceall", "--jobs", "4"]
    assert cases["test_fails"].shouldfail and not cases["test_fails"].check_results
    split = cases["test_split_targets"]
    assert split.args[-3:] == ["--", "a", "b"] and not split.check_content
    assert cases["test_cli"].shellcmd
    assert cases["test_cli"].args == ["-c1", "--set-threads", "a=2", "--", "done.txt"]
    assert cases["test_online"].skip == "needs the internet"
    assert cases["test_more"].skip.startswith("does more than run()")
    assert cases["test_redirect"].skip == "shellcmd uses shell redirection or operators"
    assert "report=" in cases["test_report"].skip
    assert "not a literal" in cases["test_computed"].skip
    assert cases["test_absent"].skip == "folder wf_gone is not in the sdist"


def test_knot_flags_go_before_the_targets_and_respect_the_tests_jobs():
    case = Case("t", "tests.py", "wf", ["--cores", "1", "--", "x.txt"])
    args = knot_args(case, ("--default-storage-provider", "s3"))
    assert args[-2:] == ["--", "x.txt"]
    assert args[:2] == ["--cores", "1"] and "--executor" in args and "--jobs" in args
    assert args.index("--default-storage-provider") < args.index("--")
    assert "--jobs" not in knot_args(Case("t", "tests.py", "wf", ["-j", "2"]))
    assert "--jobs" not in knot_args(Case("t", "tests.py", "wf", ["-j2"]))


@pytest.fixture
def results(tmp_path) -> Path:
    expected = tmp_path / "expected-results"
    (expected / "sub").mkdir(parents=True)
    (expected / "a.txt").write_bytes(b"one\n")
    (expected / "sub" / "b.txt").write_bytes(b"two")
    (expected / ".gitkeep").write_bytes(b"")
    (expected / "c.txt_WIN").write_bytes(b"windows only")
    return expected


def _workdir(tmp_path: Path, files: dict[str, bytes]) -> Path:
    workdir = tmp_path / "work"
    for name, data in files.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_bytes(data)
    return workdir


def test_outputs_compare_as_the_harness_does(results, tmp_path):
    same = _workdir(tmp_path, {"a.txt": b"one", "sub/b.txt": b"two\n\n"})
    assert compare(results, same, read_local).passed  # surrounding whitespace is ignored
    (same / "a.txt").write_bytes(b"One\n")
    differs = compare(results, same, read_local)
    assert not differs.passed and differs.kind == "output differs"
    assert differs.reason.startswith("a.txt differs: 'One'")
    assert compare(results, same, read_local, check_content=False).passed
    (same / "sub" / "b.txt").unlink()
    missing = compare(results, same, read_local, check_content=False)
    assert (missing.kind, missing.reason) == (
        "missing output",
        "expected output sub/b.txt was not produced",
    )


def test_a_test_expecting_failure_passes_only_when_the_run_fails(tmp_path):
    case = Case("t", "tests.py", "wf", shouldfail=True, check_results=False)
    assert judge(case, tmp_path, tmp_path, 1, "", read_local).passed
    wrong = judge(case, tmp_path, tmp_path, 0, "", read_local)
    assert not wrong.passed and wrong.kind == "did not fail"


def test_a_failed_runs_log_gives_its_first_meaningful_line_and_a_kind():
    refused = (
        "Building DAG of jobs...\nknot: checking the workflow\nWorkflowError:\n"
        "Rule 'a' has nothing to run (no run:, shell: or script:)\n"
        "Complete log: .snakemake/log/x.log\n"
    )
    assert first_error(refused) == (
        "WorkflowError: Rule 'a' has nothing to run (no run:, shell: or script:)"
    )
    assert classify(refused) == "refused before any job"
    failed = (
        "knot: rule a: Batch job abc = jobid 1\nError in rule a:\n    jobid: 1\n"
        "    output: x.txt\nknot: job log tail:\ncat: y.txt: No such file or directory\n"
        "Shutting down, this might take some time.\n"
    )
    assert first_error(failed) == "cat: y.txt: No such file or directory"
    assert classify(failed) == "job failed"


def test_a_sample_is_deterministic_and_spread_over_the_names():
    cases = [Case(f"test_{i:02d}", "tests.py", f"f{i}") for i in range(10)]
    cases.append(Case("test_skipped", "tests.py", "x", skip="needs conda"))
    picked = [c.name for c in select(cases, None, 3)]
    assert picked == ["test_00", "test_03", "test_06"]
    assert [c.name for c in select(cases, ["f4", "test_07"], None)] == ["test_04", "test_07"]


def test_the_summary_counts_passes_against_local_passes_and_groups_skips():
    cases = [
        Case("test_a", "tests.py", "a"),
        Case("test_b", "tests.py", "b", shouldfail=True),
        Case("test_c", "tests.py", "c"),
        Case("test_r", "tests.py", "r", skip="report='x.html' has no command-line equivalent here"),
        Case("test_s", "tests.py", "s", skip="report='y.zip' has no command-line equivalent here"),
    ]
    results = [
        Result("test_a", "a", Outcome(True, seconds=1), Outcome(False, "x", "job failed", 9)),
        Result("test_b", "b", Outcome(True, seconds=1), Outcome(True, seconds=5)),
        Result("test_c", "c", Outcome(False, "y", "output differs", 1)),
    ]
    summary = summarize("9.0", cases, cases[:3], results, 20)
    assert (summary.tests, summary.mapped, summary.selected) == (5, 3, 3)
    assert (summary.local_passed, summary.knot_run, summary.knot_passed) == (2, 2, 1)
    assert summary.shouldfail_passed == 1 and summary.rate == 0.5
    assert summary.skipped == {"report= has no command-line equivalent here": 2}
    text = summary.text()
    assert "knot: 1 of 2 pass (50%" in text and "FAIL test_a: job failed: x" in text
    assert "local FAIL test_c: output differs: y" in text
