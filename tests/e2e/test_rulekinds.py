"""End to end: rules Snakemake's own test workflows showed knot refusing or running wrong
(tests/workflows/rulekinds), on the emulator in both I/O modes, with outputs equal to
--executor local's byte for byte. One workflow covers them all:

- a module kept outside the workflow's folder (``use rule * from greet``): an f-string shell
  command of the job's output, a data file named through ``workflow.source_path()`` (in a
  param, and written into a command), and the module's own script;
- an included rules file whose script is ``../scripts/count.py``;
- a rule with no action, in a group, whose touch() output the next member reads;
- a resource function of the input's size that fails when called before its input exists,
  and ``mem_mb`` of ``attempt``, whose first attempt fails and whose retry gets 1024.
"""

from __future__ import annotations

import os
import shutil

import pytest

from .helpers import (
    KNOT,
    ROOT,
    bucket_digests,
    file_digests,
    latest_summary,
    outputs_of,
    snakemake,
    storage_args,
)

pytestmark = pytest.mark.e2e

WORKFLOW = ROOT / "tests" / "workflows" / "rulekinds"
BUCKET = "knot-e2e-rulekinds"
OUTPUTS = [
    "results/after.txt", "results/banner.txt", "results/count.txt", "results/fstring.txt",
    "results/grown.txt", "results/shout.txt", "results/sized.txt", "results/stamp.txt",
    "results/table.txt",
]  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A folder holding the module (shared/greet/) once, beside which each run gets its
    own copy of wf/: every run ships the module from the same absolute path, so the rule
    images of the second run are the first run's."""
    root = tmp_path_factory.mktemp("rulekinds")
    shutil.copytree(WORKFLOW / "shared", root / "shared")
    return root


def _copy(tree, name: str) -> tuple:
    workdir = tree / name
    shutil.copytree(
        WORKFLOW / "wf", workdir, ignore=shutil.ignore_patterns(".snakemake", "results")
    )
    return workdir, file_digests(workdir)


@pytest.fixture(scope="module")
def expected(tree) -> dict[str, str]:
    workdir, before = _copy(tree, "wf-local")
    done = snakemake(workdir, "--cores", "2")
    assert done.returncode == 0, done.stdout[-3000:]
    found = outputs_of(workdir, before)
    assert sorted(found) == OUTPUTS
    assert (workdir / "results" / "fstring.txt").read_text() == "I was here\n"
    assert (workdir / "results" / "grown.txt").read_text() == "1024\n"
    return found


@pytest.mark.parametrize("mode", ["files", "storage"])
def test_module_rules_norun_member_and_late_resources(mode, expected, tree, emulator_env):
    workdir, before = _copy(tree, f"wf-{mode}")
    prefix = f"rulekinds-{mode}-{os.getpid()}/"
    extra = () if mode == "files" else storage_args(emulator_env, BUCKET, prefix.rstrip("/"))
    done = snakemake(workdir, *KNOT, *extra)
    assert done.returncode == 0, done.stdout[-6000:]

    got = outputs_of(workdir, before)
    if mode == "storage":  # the outputs are objects under the prefix, none on the host
        assert not got
        got = bucket_digests(BUCKET, prefix)
    assert got == expected
    # Snakemake restarted `grown` once, with the resources of its second attempt.
    assert "Trying to restart job" in done.stdout
    jobs = latest_summary(workdir)["jobs"]
    (grown,) = [job for job in jobs if job["rule"] == "grown"]
    assert grown["requested"]["memory_mib"] == 1024
    assert any(job["rule"].startswith("group:stamped:") for job in jobs)
