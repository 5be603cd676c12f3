"""End to end: conda: environments and a wrapper on the emulator, in both I/O modes. The channel is
made here (tests/condachannel.py); py-rattler solves and installs from it, unmocked. A
Python script and a wrapper whose environment has python run with it; its pip: section is
installed from PyPI in the build.
There is no conda on this machine, so --executor local cannot run the conda rules: their
outputs are checked against known bytes. Without the flag, conda: is ignored with one
notice, and the output equals --executor local's."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
import yaml

from snakemake_executor_knot.cli import main
from tests.condachannel import make_channel, render_envs

from .helpers import (
    KNOT,
    ROOT,
    bucket_digests,
    copy_workflow,
    file_digests,
    outputs_of,
    snakemake,
    storage_args,
)

pytestmark = pytest.mark.e2e

WORKFLOW = ROOT / "tests" / "workflows" / "conda"
BUCKET = "knot-e2e-conda"
CONDA = ("--software-deployment-method", "conda")
EXPECTED = {
    "greet/alice.txt": b"hello from conda: greetings, alice\nactivated\n",
    "greet/bob.txt": b"hello from conda: greetings, bob\nactivated\n",
    "count/alice.txt": b"hello from conda: counted 2 lines\n",
    "wrapped/carol.txt": b"hello from conda: greetings, dear carol\nthreads=2\n",
    "logs/wrapped/carol.log": b"",
    # The environment's own python: its packages (conda and pip:) import, knot's do not.
    "pyenv/dave.txt": b"bin/python\nhello from a module only the environment has\nsix 1.17.0\n"
    b"knot's venv absent\nactivated\npyenv dave hi threads=2\n"
    b"alice.txt -> dave.txt -> dave.log\nhello from conda: dave\n",
    "logs/pyenv/dave.log": b"",
    "pywrapped/erin.txt": b"bin/python hello from a module only the environment has\n"
    b"hello from conda: greetings, dear erin\n",
    "logs/pywrapped/erin.log": b"",
    "which.txt": b"conda\n",
    "plain.txt": b"None\n",  # a run: block keeps knot's Python, outside the environment
}


@pytest.fixture(scope="module")
def channel(tmp_path_factory) -> str:
    return make_channel(tmp_path_factory.mktemp("channel"), python=True)


def _workflow(tmp_path, channel: str, name: str):
    workdir = copy_workflow(WORKFLOW, tmp_path / name)
    render_envs(workdir, channel)
    return workdir, file_digests(workdir)


@pytest.mark.parametrize("mode", ["files", "storage"])
def test_conda_shell_and_script_rules_run_in_their_environment(
    mode, channel, emulator_env, tmp_path
):
    workdir, before = _workflow(tmp_path, channel, "knot")
    prefix = f"conda-{os.getpid()}"
    extra = () if mode == "files" else storage_args(emulator_env, BUCKET, prefix)
    wrappers = ("--wrapper-prefix", f"{(workdir / 'wrappers').as_uri()}/")
    done = snakemake(workdir, *KNOT, *CONDA, *wrappers, *extra)
    assert done.returncode == 0, done.stdout[-6000:]
    assert "ignoring 'conda:'" not in done.stdout
    # count and wrapped have no python in their environment: knot's runs them, as
    # Snakemake's own would, and the run says so once for each before any build.
    for rule, kind in (("count", "script"), ("wrapped", "wrapper")):
        assert done.stdout.count(f"rule {rule}: its conda environment") == 1, done.stdout
        assert f"so its Python {kind} runs with knot's Python" in done.stdout
    expected = {path: hashlib.sha256(data).hexdigest() for path, data in EXPECTED.items()}
    got = outputs_of(workdir, before) if mode == "files" else bucket_digests(BUCKET, prefix + "/")
    assert got == expected


def test_without_the_flag_conda_is_ignored_with_one_notice(channel, emulator_env, tmp_path):
    workdir, before = _workflow(tmp_path, channel, "knot")
    local_dir, local_before = _workflow(tmp_path, channel, "local")
    local = snakemake(local_dir, "--cores", "1", "which.txt")
    assert local.returncode == 0, local.stdout[-3000:]
    done = snakemake(workdir, *KNOT, "which.txt")
    assert done.returncode == 0, done.stdout[-6000:]
    assert done.stdout.count("ignoring 'conda:'") == 1
    assert "ignoring 'conda:' of rule which, as Snakemake does" in done.stdout
    assert outputs_of(workdir, before) == outputs_of(local_dir, local_before)
    assert (workdir / "which.txt").read_bytes() == b"plain\n"


def test_a_locked_run_installs_the_pinned_pip_closure(channel, emulator, emulator_env, tmp_path):
    """'knot lock' pins the pip: line of the environment by its wheel's hash; a run with
    --knot-locked builds from the lock, with pip in its hash-checking mode, and gives the
    same bytes."""
    workdir, before = _workflow(tmp_path, channel, "knot")
    wrappers = ("--wrapper-prefix", f"{(workdir / 'wrappers').as_uri()}/")
    snakefile = str(workdir / "Snakefile")
    base = ("--base-image", emulator["base_image"])
    assert main(["lock", "--snakefile", snakefile, *base, *wrappers]) == 0
    lock = yaml.safe_load((workdir / "knot.conda.lock").read_text())
    [pin] = lock["environments"]["envs/py.yaml"]["pip"]
    assert re.fullmatch(r"six==1\.17\.0 --hash=sha256:[0-9a-f]{64}", pin), pin
    done = snakemake(workdir, *KNOT, *CONDA, *wrappers, "--knot-locked", "pyenv/dave.txt")
    assert done.returncode == 0, done.stdout[-6000:]
    wanted = ("pyenv/dave.txt", "logs/pyenv/dave.log", "greet/alice.txt")
    expected = {path: hashlib.sha256(EXPECTED[path]).hexdigest() for path in wanted}
    made = outputs_of(workdir, before)
    assert {"knot.lock", "knot.conda.lock"} <= set(made)  # written by 'knot lock'
    assert {path: d for path, d in made.items() if not path.startswith("knot.")} == expected
