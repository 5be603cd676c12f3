"""End to end: a fixed sample of Snakemake's own test workflows, from the sdist of the
installed Snakemake, runs under knot on the emulator and gives the files its
expected-results/ folder holds, judged by the conformance benchmark's own functions
(benchmarks/conformance.py). The whole sweep is a benchmark, not a test."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import conformance

pytestmark = pytest.mark.e2e

# Small shell workflows: targets on the command line, unnamed rules, wildcards, temp() and
# log files, `threads: 0` formatted as 0; in storage mode, unpack() and named outputs.
SAMPLE = ("test_conditional", "test_same_wildcard", "test_wildcard_keyword", "test_threads0")
STORAGE_SAMPLE = "test_unpack_dict"


@pytest.fixture(scope="module")
def upstream() -> tuple[Path, dict[str, conformance.Case]]:
    """The sdist's tests/ (downloaded once into ~/.cache/knot) and its mapped cases."""
    tests = conformance.snakemake_tests()
    return tests, {case.name: case for case in conformance.read_cases(tests)}


def _env(emulator_env: dict, tmp_path: Path) -> dict[str, str]:
    env = {**conformance.run_env(tmp_path), **emulator_env}
    conformance.ensure_bucket(env)
    return env


@pytest.mark.parametrize("name", SAMPLE)
def test_upstream_workflow_gives_its_expected_results_under_knot(
    name, upstream, emulator_env, tmp_path
):
    tests, cases = upstream
    case = cases[name]
    assert not case.skip and not case.shouldfail and case.check_results, case
    assert conformance.expected_files(tests / case.folder / "expected-results")
    env = _env(emulator_env, tmp_path)
    outcome = conformance.knot_run(case, tests, tmp_path, env, timeout=600, storage=False)
    assert outcome.passed, f"{outcome.kind}: {outcome.reason}"


def test_upstream_workflow_in_storage_mode(upstream, emulator_env, tmp_path):
    tests, cases = upstream
    env = _env(emulator_env, tmp_path)
    case = cases[STORAGE_SAMPLE]
    outcome = conformance.knot_run(case, tests, tmp_path, env, timeout=600, storage=True)
    assert outcome.passed, f"{outcome.kind}: {outcome.reason}"


# ensure(): an empty output and a wrong checksum fail their jobs (Snakemake checks them after
# a job it runs itself; knot's job checks them), a right one passes.
ENSURE = {
    "test_ensure_success": "",
    "test_ensure_nonempty_fail": "empty, but marked ensure(non_empty=True)",
    "test_ensure_checksum_fail": "its checksum is not ensure()'s sha256:",
}


@pytest.mark.parametrize("name", ENSURE)
def test_upstream_ensure_outputs_under_knot(name, upstream, emulator_env, tmp_path):
    tests, cases = upstream
    env = _env(emulator_env, tmp_path)
    outcome = conformance.knot_run(cases[name], tests, tmp_path, env, timeout=600, storage=False)
    assert outcome.passed, f"{outcome.kind}: {outcome.reason}"
    assert ENSURE[name] in outcome.log
