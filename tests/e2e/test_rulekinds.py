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


def _copy(root) -> tuple:
    """The workflow (wf/) and its module (shared/greet/, outside wf/) copied to ``root``."""
    shutil.copytree(WORKFLOW, root, ignore=shutil.ignore_patterns(".snakemake", "results"))
    workdir = root / "wf"
    return workdir, file_digests(workdir)


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict[str, str]:
    workdir, before = _copy(tmp_path_factory.mktemp("local") / "rulekinds")
    done = snakemake(workdir, "--cores", "2")
    assert done.returncode == 0, done.stdout[-3000:]
    found = outputs_of(workdir, before)
    assert sorted(found) == OUTPUTS
    assert (workdir / "results" / "fstring.txt").read_text() == "I was here\n"
    assert (workdir / "results" / "grown.txt").read_text() == "1024\n"
    return found


@pytest.mark.parametrize("mode", ["files", "storage"])
def test_module_rules_norun_member_and_late_resources(mode, expected, emulator_env, tmp_path):
    workdir, before = _copy(tmp_path / "rulekinds")
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
