"""End to end: R, R Markdown and Bash scripts (tests/workflows/scripts) run on the emulator in
both I/O modes, each reading the snakemake object Snakemake's own preamble gives it; jinja2
and yte templates render as Snakemake renders them (on this machine: they are local jobs);
a notebook runs with nbconvert and its executed copy comes back where its log names it.

Bash, templates and the notebook run under --executor local here too, and knot's outputs
must equal that run's bytes.
R is not installed on this machine, so R and R Markdown outputs are compared with known
bytes; they run in an image built here FROM knot's base with Debian's r-base-core,
r-cran-rmarkdown and pandoc, named by the rules' container:.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import nbformat
import pytest

from .helpers import KNOT, ROOT, copy_workflow, file_digests, outputs_of, snakemake, storage_args

pytestmark = pytest.mark.e2e

WORKFLOW = ROOT / "tests" / "workflows" / "scripts"
R_IMAGE = "knot-test-scripts-r"
BUCKET = "knot-e2e-scripts"
# What --executor local can make here (no R): Bash scripts and templates.
LOCAL_TARGETS = [
    *(f"results/bash/{sample}.txt" for sample in "ab"),
    *(f"results/templates/{sample}.{ext}" for sample in "ab" for ext in ("txt", "yaml")),
    *(f"results/notebook/{sample}.txt" for sample in "ab"),
]
# Snakemake runs notebooks with jupyter-nbconvert from PATH: this interpreter's.
VENV_PATH = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])}


def _r_summary(sample: str, mean_times_two: str) -> bytes:
    return (
        f"rule r_stats\nsample {sample}\nmean of y {mean_times_two}\nthreads 2\nmem_mb 300\n"
        f"greeting hello\nscriptdir scripts\noutput {sample}.txt {sample}.txt\n"
    ).encode()


# What R writes for the tables of rule `table`: a has y = 1, 4, 9 and b has 1, 4, ..., 25.
KNOWN = {
    "results/r/a.txt": _r_summary("a", "9.33333333333333"),
    "results/r/b.txt": _r_summary("b", "22"),
    # pandoc's Markdown escapes the rule name's underscore.
    "results/report.md": b"Rule r\\_report read 2 tables with 8 rows in all.\n",
    "logs/r/a.log": b"R done\n",
    "logs/r/b.log": b"R done\n",
}


@pytest.fixture(scope="module")
def r_image(docker_engine, base_image) -> str:
    """An image with R, R Markdown and pandoc from Debian, built FROM knot's base (no
    Docker Hub here); docker's layer cache makes it quick after the first time."""
    dockerfile = (
        f"FROM {base_image}\n"
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        "--no-install-recommends r-base-core r-cran-rmarkdown pandoc "
        "&& rm -rf /var/lib/apt/lists/*\n"
    )
    built = subprocess.run(
        ["docker", "build", "--network", "host", "-t", R_IMAGE, "-"],
        input=dockerfile.encode(),
        capture_output=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stderr.decode()[-3000:]
    return R_IMAGE


@pytest.fixture(scope="module")
def bash_local(tmp_path_factory) -> dict[str, str]:
    """What --executor local makes of the Bash, template and notebook rules, with the
    executed notebooks (logs) as notebooks: their first cell, the preamble, differs."""
    workdir = copy_workflow(WORKFLOW, tmp_path_factory.mktemp("local") / "wf")
    before = file_digests(workdir)
    done = snakemake(workdir, "--cores", "2", *LOCAL_TARGETS, env=VENV_PATH)
    assert done.returncode == 0, done.stdout[-3000:]
    return _as_notebooks(outputs_of(workdir, before), lambda p: (workdir / p).read_bytes())


@pytest.mark.parametrize("mode", ["files", "storage"])
def test_scripts_templates_and_notebook(mode, r_image, bash_local, emulator_env, tmp_path):
    workdir = copy_workflow(WORKFLOW, tmp_path / "knot")
    before = file_digests(workdir)
    prefix = f"scripts-{mode}-{os.getpid()}"
    extra = () if mode == "files" else storage_args(emulator_env, BUCKET, prefix)
    done = snakemake(workdir, *KNOT, *extra, "--config", f"r_image={r_image}")
    assert done.returncode == 0, done.stdout[-6000:]

    got = outputs_of(workdir, before)
    if mode == "storage":  # outputs are objects under the prefix
        got |= _objects(prefix)
        assert not (workdir / "results").exists()
    got = _as_notebooks(got, lambda path: _read(mode, workdir, prefix, path))
    expected = {path: hashlib.sha256(body).hexdigest() for path, body in KNOWN.items()}
    local_made = {p: d for p, d in bash_local.items() if not p.startswith("results/data/")}
    assert {p: d for p, d in got.items() if not p.startswith("results/data/")} == {
        **local_made,
        **expected,
    }
    bash_a = _read(mode, workdir, prefix, "results/bash/a.txt")
    assert b"rows 3\nwords one two\nthreads 2\nmem_mb 300\ngreeting hello\n" in bash_a


def _as_notebooks(found: dict[str, str], read) -> dict[str, str]:
    """``found`` with each executed notebook (``read(path)`` gives its bytes) as the cells
    after the preamble cell, with their outputs: Snakemake's preamble holds a pickle and
    the working directory, knot's its own code."""
    for path in [p for p in found if p.endswith(".ipynb")]:
        notebook = nbformat.reads(read(path).decode(), as_version=4)
        assert "snakemake-job-properties" in notebook["cells"][0]["metadata"]["tags"]
        cells = [(c["source"], c.get("outputs")) for c in notebook["cells"][1:]]
        assert any(outputs for _, outputs in cells), path  # it ran
        found[path] = json.dumps(cells, sort_keys=True)
    return found


def _objects(prefix: str) -> dict[str, str]:
    s3 = boto3.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            found[obj["Key"][len(prefix) + 1 :]] = hashlib.sha256(body).hexdigest()
    return found


def _read(mode: str, workdir: Path, prefix: str, path: str) -> bytes:
    """A file the run made: local, or in storage mode the object (logs may be either)."""
    if mode == "files" or (workdir / path).is_file():
        return (workdir / path).read_bytes()
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"{prefix}/{path}")
    return body["Body"].read()
