"""runtime/envpython.py: a Python script of a rule with a conda environment runs with the
environment's own python (a real interpreter, in a venv-style prefix as the test channel's
``python`` makes it), gets the snakemake object, and falls back to knot's Python, as
Snakemake falls back to its own, when the environment has none."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snakemake_executor_knot.runtime import conda, envpython, kinds, preamble
from snakemake_executor_knot.runtime.contract import CONDA_PREFIX_ENV, RULE_DIR_ENV
from snakemake_executor_knot.runtime.namedlist import Namedlist, Wildcards
from snakemake_executor_knot.runtime.namespace import Namespace
from snakemake_executor_knot.runtime.shell import shell

RUNTIME = Path(envpython.__file__).parent
# The modules the environment's Python imports to rebuild the snakemake object.
ENV_MODULES = (
    "__init__",
    "envpython",
    "script",
    "namespace",
    "namedlist",
    "shell",
    "report",
    "contract",
    "values",
)
# The interpreter the test environment wraps: the one under knot's venv, whose packages
# (boto3, snakemake) the environment must not see.
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))

SCRIPT = """\
import os, sys
import envonly
from snakemake.shell import shell
from snakemake.script import snakemake as imported

try:
    import boto3  # knot's venv has it; the environment does not
    venv = "visible"
except ImportError:
    venv = "absent"
sm = snakemake
lines = [
    os.path.relpath(sys.executable, os.environ["CONDA_PREFIX"]),
    str(sys.prefix == os.environ["CONDA_PREFIX"]),
    envonly.NAME,
    venv,
    os.environ.get("FROM_ACTIVATE", "-"),
    str(imported is sm),
    f"{sm.input.data} {sm.input[1]} {sm.output[0]} {sm.log}",
    f"{sm.params.alpha} {sm.params['beta']} {sm.wildcards.sample} {sm.threads}",
    f"{sm.resources.mem_mb} {sm.config['run']} {sm.rule}",
    os.path.basename(sm.scriptdir),
    os.path.basename(__real_file__),
    str(os.path.dirname(__file__) in sys.path),
    sm.log_fmt_shell(stdout=False),
]
with open(sm.output[0], "w") as handle:
    handle.write("\\n".join(lines) + "\\n")
shell("echo {sm.wildcards.sample} $OMP_NUM_THREADS >> {snakemake.output[0]:q}")
"""


def _prefix(root: Path, python: bool = True) -> Path:
    """An environment as the test channel's python, pip and module packages install it."""
    prefix = root / "env"
    (prefix / "bin").mkdir(parents=True)
    site = prefix / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "envonly.py").write_text('NAME = "only in the environment"\n')
    activate = prefix / "etc" / "conda" / "activate.d"
    activate.mkdir(parents=True)
    (activate / "x.sh").write_text("export FROM_ACTIVATE=sourced\n")
    if python:
        home = os.path.dirname(BASE_PYTHON)
        (prefix / "pyvenv.cfg").write_text(f"home = {home}\ninclude-system-site-packages = false\n")
        (prefix / "bin" / "python").symlink_to(BASE_PYTHON)
    return prefix


def _namespace() -> Namespace:
    return Namespace(
        input=Namedlist(["a.txt", "b.txt"], {"data": (0, None)}),
        output=Namedlist(["out/s1.txt"]),
        params=Namedlist([0.5, "x"], {"alpha": (0, None), "beta": (1, None)}),
        wildcards=Wildcards(["s1"], {"sample": (0, None)}),
        threads=3,
        resources=Namedlist([1, 2000], {"_cores": (0, None), "mem_mb": (1, None)}),
        log=Namedlist(["logs/s1.log"]),
        config={"run": "r7"},
        rule="fit",
        jobid=4,
    )


@pytest.fixture
def job(tmp_path, monkeypatch):
    """A job's working directory, its rule folder with the script, and the environment
    activated as run_kind activates it; the environment's root is allowed under tmp."""
    monkeypatch.setattr(conda, "CONDA_ROOT", str(tmp_path))
    rule_dir = tmp_path / "rule"
    (rule_dir / "scripts").mkdir(parents=True)
    (rule_dir / "scripts" / "fit.py").write_text(SCRIPT)
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("PATH", os.environ["PATH"])
    for name in (
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "CONDA_SHLVL",
        "PYTHONPATH",
        CONDA_PREFIX_ENV,
    ):
        monkeypatch.setenv(name, "")  # recorded, so that the test's changes are undone
        monkeypatch.delenv(name)
    saved = (shell._activation, shell._executable, shell._prefix, shell._suffix)
    yield {RULE_DIR_ENV: str(rule_dir)}, tmp_path
    shell._activation, shell._executable, shell._prefix, shell._suffix = saved


def _run(env: dict, prefix: Path) -> None:
    env = {**env, CONDA_PREFIX_ENV: str(prefix)}
    os.environ[CONDA_PREFIX_ENV] = str(prefix)
    kinds.activate_conda(os.environ)
    kinds.run_python_script(_namespace(), "scripts/fit.py", env)


def test_the_script_runs_with_the_environments_python_and_gets_the_snakemake_object(job):
    env, root = job
    prefix = _prefix(root)
    _run(env, prefix)
    assert Path("out/s1.txt").read_text().splitlines() == [
        "bin/python",
        "True",
        "only in the environment",
        "absent",
        "sourced",  # activation scripts ran before the interpreter, as conda's do
        "True",
        "a.txt b.txt out/s1.txt logs/s1.log",
        "0.5 x s1 3",
        "2000 r7 fit",
        "scripts",
        "fit.py",
        "True",
        " 2> logs/s1.log",
        "s1 3",
    ]
    assert not any(Path(".snakemake/scripts").iterdir())  # launcher and pickle removed


def test_without_python_the_script_runs_with_knots_own(job, capfd):
    env, root = job
    prefix = _prefix(root, python=False)
    sys.path.insert(0, str(prefix / "lib" / "python3.11" / "site-packages"))
    try:
        _run(env, prefix)
    finally:
        sys.path.remove(str(prefix / "lib" / "python3.11" / "site-packages"))
        sys.modules.pop("envonly", None)
    lines = Path("out/s1.txt").read_text().splitlines()
    assert lines[3] == "visible"  # knot's venv
    assert lines[0] != "bin/python"
    assert "has no python 3.8 or newer" in capfd.readouterr().err


def test_a_python_too_old_is_not_used(tmp_path):
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "python"
    fake.write_text("#!/bin/sh\necho 'Python 3.6.15' >&2\n")
    fake.chmod(0o755)
    assert envpython.env_python(str(tmp_path)) is None
    fake.write_text("#!/bin/sh\necho 'Python 3.12.1'\n")
    assert envpython.env_python(str(tmp_path)) == str(fake)
    assert envpython.env_python(str(tmp_path / "none")) is None


def test_a_failing_script_fails_the_job_with_its_exit_status(job):
    env, root = job
    prefix = _prefix(root)
    Path(env[RULE_DIR_ENV], "scripts", "fit.py").write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(subprocess.CalledProcessError) as caught:
        _run(env, prefix)
    assert caught.value.returncode == 3


def test_the_snakefiles_shell_prefix_reaches_the_environments_python(job):
    env, root = job
    prefix = _prefix(root)
    script = Path(env[RULE_DIR_ENV], "scripts", "fit.py")
    script.write_text("shell('false | echo mid >> {snakemake.output[0]}')\n")
    kinds.apply_shell_wrap({"prefix": "echo pre >> out/s1.txt;"})
    _run(env, prefix)
    # Once before the interpreter's command, as Snakemake's shell() runs it; once before
    # the script's own command, without strict mode (the prefix replaces it).
    assert Path("out/s1.txt").read_text() == "pre\npre\nmid\n"


@pytest.mark.parametrize("name", ENV_MODULES)
def test_the_modules_the_environments_python_imports_parse_as_python_3_8(name):
    source = (RUNTIME / f"{name}.py").read_text()
    ast.parse(source, feature_version=(3, 8))
    assert envpython.MIN_VERSION == (3, 8)


def test_the_environments_python_imports_no_package_of_knots_venv():
    root = RUNTIME.parent.parent
    code = (
        f"import sys; sys.path.append({str(root)!r}); "
        "import snakemake_executor_knot.runtime.envpython; "
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('boto3', 'botocore', "
        "'s3transfer', 'snakemake')))"
    )
    done = subprocess.run([BASE_PYTHON, "-I", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_notebook_runs_with_the_environments_jupyter_when_it_has_one(job):
    env, root = job
    prefix = _prefix(root)
    jupyter = prefix / "bin" / "jupyter"
    jupyter.write_text('#!/bin/sh\necho "$0 $*" > out/s1.txt\n')
    jupyter.chmod(0o755)
    os.environ[CONDA_PREFIX_ENV] = str(prefix)
    kinds.activate_conda(os.environ)
    # knot's venv, first on PATH for notebooks otherwise, has its own jupyter.
    assert (Path(sys.executable).parent / "jupyter").exists()
    script = {
        "path": "nb.py.ipynb",
        "language": "jupyter_python",
        "filename": "nb.py.ipynb",
        "text": "{}",
        "command": "jupyter nbconvert {fname:q}",
    }
    preamble.run_foreign_script(_namespace(), script)
    ran, _, notebook = Path("out/s1.txt").read_text().partition(" nbconvert ")
    assert ran == str(jupyter) and notebook.strip().endswith(".nb.py.ipynb")


def test_a_param_the_environment_cannot_unpickle_fails_with_what_to_add(job, capfd):
    np = pytest.importorskip("numpy")
    env, root = job
    prefix = _prefix(root)
    ns = _namespace()
    ns.params = Namedlist([np.int64(3)], {"alpha": (0, None)})
    os.environ[CONDA_PREFIX_ENV] = str(prefix)
    kinds.activate_conda(os.environ)
    with pytest.raises(subprocess.CalledProcessError):
        kinds.run_python_script(ns, "scripts/fit.py", {**env, CONDA_PREFIX_ENV: str(prefix)})
    err = capfd.readouterr().err
    assert "cannot rebuild the job's snakemake object" in err and "'numpy'" in err
