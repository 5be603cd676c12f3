"""The plugin as Snakemake sees it: discovery from a built wheel, the --knot-* flags, and
settings arriving from flags, SNAKEMAKE_KNOT_* variables and profiles."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snakemake_executor_knot.config.settings import ExecutorSettings

ROOT = Path(__file__).resolve().parent.parent
SNAKEFILE = """
rule all:
    output: "out.txt"
    run:
        with open(output[0], "w") as f:
            f.write("hello")
"""


def _flag(field: dataclasses.Field) -> str:
    return "--knot-" + field.name.replace("_", "-")


def _snakemake(args, cwd, env=None, python=sys.executable):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [python, "-m", "snakemake", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_every_flag_with_help(tmp_path):
    out = _snakemake(["--help"], tmp_path).stdout
    for field in dataclasses.fields(ExecutorSettings):
        assert _flag(field) in out, _flag(field)
        assert field.metadata["help"].split()[0] in out


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    return tmp_path


BAD_STACK = "not a stack!"
BAD_STACK_ERROR = "is not a valid knot stack name"


def test_flag_reaches_plugin(workdir):
    result = _snakemake(
        ["--executor", "knot", "--jobs", "1", "--knot-stack-name", BAD_STACK], workdir
    )
    assert result.returncode != 0
    assert BAD_STACK_ERROR in result.stdout + result.stderr


def test_environment_variable_reaches_plugin(workdir):
    result = _snakemake(
        ["--executor", "knot", "--jobs", "1"], workdir, env={"SNAKEMAKE_KNOT_STACK_NAME": BAD_STACK}
    )
    assert result.returncode != 0
    assert BAD_STACK_ERROR in result.stdout + result.stderr


def test_profile_reaches_plugin(workdir):
    profile = workdir / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(
        f"executor: knot\njobs: 1\nknot-stack-name: '{BAD_STACK}'\n"
    )
    result = _snakemake(["--workflow-profile", str(profile)], workdir)
    assert result.returncode != 0
    assert BAD_STACK_ERROR in result.stdout + result.stderr


# The lowest Snakemake that pyproject.toml allows; the rest of the suite runs against the
# newest one installed in .venv, so the two ends of the range are both tested.
LOWEST_SNAKEMAKE = "9.0.0"
IMPORT_ALL = """
import importlib, pkgutil, snakemake_executor_knot as knot
names = [m.name for m in pkgutil.walk_packages(knot.__path__, "snakemake_executor_knot.")
         if ".emulator" not in m.name and not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_pyproject_states_the_range_tested_here():
    text = (ROOT / "pyproject.toml").read_text()
    major, minor, patch = LOWEST_SNAKEMAKE.split(".")
    assert (minor, patch) == ("0", "0") and f'"snakemake>={major},<10"' in text


def test_built_wheel_is_discovered(tmp_path):
    """Install the wheel (not an editable install) into a fresh venv, with the lowest
    Snakemake knot supports, and ask Snakemake: the plugin registers, every module
    imports, and a setting reaches the plugin."""
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next(dist.glob("snakemake_executor_plugin_knot-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pin = f"snakemake=={LOWEST_SNAKEMAKE}"
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel), pin], check=True)
    found = subprocess.run(
        [
            python,
            "-c",
            "from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry;"
            "print(ExecutorPluginRegistry().get_plugin('knot').name)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "knot"
    assert (venv / "bin" / "knot").exists()
    assert "--knot-stack-name" in _snakemake(["--help"], tmp_path, python=python).stdout
    version = [python, "-c", "import snakemake; print(snakemake.__version__)"]
    assert subprocess.run(version, capture_output=True, text=True).stdout.strip() == pin[11:]
    imported = subprocess.run([python, "-c", IMPORT_ALL], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert int(imported.stdout) > 100
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    refused = _snakemake(
        ["--executor", "knot", "--knot-stack-name", BAD_STACK, "-j1"], tmp_path, python=python
    )
    assert BAD_STACK_ERROR in refused.stdout + refused.stderr
