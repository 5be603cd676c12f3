"""Conformance: Snakemake's own test workflows under knot (issue 18, part 11).

Snakemake's sdist on PyPI ships its ``tests/`` folder: a few hundred small workflows, each
with an ``expected-results/`` folder, and the pytest modules that run them through
``run(dpath("<dir>"), <keyword arguments>)``. This benchmark reads those modules with
``ast`` (nothing of them is imported or executed), turns each test's literal keyword
arguments into Snakemake command-line flags where the flags can say the same thing, and
runs each workflow in a fresh copy: first under ``--executor local``, then, for those that
pass locally, under ``--executor knot`` on an emulator. A run passes as the upstream
harness decides: the exit status matches ``shouldfail``, and every file under
``expected-results/`` exists with the same bytes once leading and trailing whitespace are
stripped.

``python -m benchmarks.conformance [--only NAME...] [--sample N] [--timeout S]
[--storage] [--json FILE]`` prints the pass rate (knot passes / local passes) and one line
per failure. ``python -m benchmarks --only conformance`` runs it with its defaults.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .report import Row

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "knot" / "conformance"
BUCKET = "knot-conformance"
REGION = "us-east-1"
# The upstream harness's default core count.
DEFAULT_CORES = 3
KNOT_JOBS = 8
LOG_TAIL = 20_000  # characters of a failed run's output kept in the JSON
# Upstream modules that call run() on a test folder.
MODULES = ("tests.py", "tests_using_conda.py")
# Marker decorators that do not change what a test needs here.
HARMLESS_DECORATORS = {"skip_on_windows", "skip_on_macos_arm", "xfail_permissionerror_on_win"}
# Decorators naming a reason the workflow cannot run here; others are reported by name.
NEEDS = {
    "connected": "needs the internet",
    "apptainer": "needs apptainer",
    "conda": "needs conda",
    "only_on_windows": "runs on Windows only",
    "zenodo": "needs a Zenodo token",
    "gcloud": "needs Google Cloud",
    "azbatch": "needs Azure Batch",
}


# ---- the sdist


def snakemake_version() -> str:
    return importlib.metadata.version("snakemake")


def snakemake_tests(version: str | None = None, cache: Path = CACHE) -> Path:
    """The ``tests/`` folder of Snakemake's sdist at ``version`` (the installed one by
    default), downloaded with pip and extracted once into ``cache``."""
    version = version or snakemake_version()
    tests = cache / f"snakemake-{version}" / "tests"
    if tests.is_dir():
        return tests
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"snakemake-{version}.tar.gz"
    if not sdist.exists():
        _download_sdist(version, cache)
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if _is_tests_member(m, version)]
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            tar.extractall(tmp, members=members, filter="data")
            Path(tmp, f"snakemake-{version}").rename(cache / f"snakemake-{version}")
    return tests


def _download_sdist(version: str, cache: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(cache),
            f"snakemake=={version}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip could not download snakemake=={version}:\n{done.stderr[-2000:]}")


def _is_tests_member(member: tarfile.TarInfo, version: str) -> bool:
    return member.name.startswith(f"snakemake-{version}/tests/") and (
        member.isfile() or member.isdir() or member.issym()
    )


# ---- reading the upstream tests


@dataclass
class Case:
    """One upstream test: the workflow folder it runs, and how."""

    name: str  # the test function
    module: str
    folder: str = ""  # relative to tests/
    args: list[str] = field(default_factory=list)  # Snakemake flags besides the executor's
    shouldfail: bool = False
    check_results: bool = True
    check_content: bool = True
    shellcmd: bool = False  # args come from the test's own command line
    skip: str = ""  # why the test is not run here


def read_cases(tests: Path) -> list[Case]:
    """Every test function of the upstream modules that calls ``run()``, mapped or with
    the reason it cannot be."""
    cases = []
    for module in MODULES:
        path = tests / module
        if not path.exists():
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                case = _case(node, module, tests)
                if case is not None:
                    cases.append(case)
    return cases


def _run_calls(node: ast.FunctionDef) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "run"
    ]


def _case(node: ast.FunctionDef, module: str, tests: Path) -> Case | None:
    calls = _run_calls(node)
    if not calls:
        return None
    case = Case(node.name, module)
    folder = _folder(calls[0])
    case.folder = folder or ""
    case.skip = (
        _decorator_reason(node)
        or ("takes pytest fixtures or parameters" if node.args.args else "")
        or ("does more than one run() call" if len(calls) > 1 else "")
        or ("does more than run() (set-up or further checks)" if not _only_run(node) else "")
        or ("names its folder by an expression" if folder is None else "")
        or ("" if (tests / case.folder).is_dir() else f"folder {case.folder} is not in the sdist")
    )
    if not case.skip:
        case.skip = _map_call(calls[0], case)
    return case


def _decorator_reason(node: ast.FunctionDef) -> str:
    for decorator in node.decorator_list:
        name = ast.unparse(decorator)
        if name in HARMLESS_DECORATORS or re.search(r"\bON_(MACOS|WINDOWS|LINUX)\b", name):
            continue
        if name in NEEDS:
            return NEEDS[name]
        return f"decorated {name[:60]}"
    return ""


def _only_run(node: ast.FunctionDef) -> bool:
    """The body is one run() call, perhaps after a docstring."""
    body = [
        s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    ]
    return len(body) == 1 and isinstance(body[0], ast.Expr) and body[0].value in _run_calls(node)


def _folder(call: ast.Call) -> str | None:
    target = (
        call.args[0]
        if call.args
        else next((k.value for k in call.keywords if k.arg == "path"), None)
    )
    if (
        isinstance(target, ast.Call)
        and isinstance(target.func, ast.Name)
        and target.func.id == "dpath"
        and len(target.args) == 1
        and isinstance(target.args[0], ast.Constant)
        and isinstance(target.args[0].value, str)
    ):
        return target.args[0].value
    return None


# Keyword arguments of the harness's run() that change nothing here: we always run in a
# fresh copy and delete it, and these only steer printing or the harness itself.
NO_OPS = {"path", "cleanup", "no_tmpdir", "printshellcmds", "debug_dag", "set_pythonpath",
          "container_image", "conda_frontend", "verbose"}  # fmt: skip


def _map_call(call: ast.Call, case: Case) -> str:
    """Fill ``case`` from the call's keyword arguments; the reason it cannot be, or ""."""
    if any(k.arg is None for k in call.keywords):
        return "passes **kwargs"
    values = {}
    for keyword in call.keywords:
        try:
            values[keyword.arg] = _literal(keyword.value)
        except ValueError:
            return f"{keyword.arg}= is not a literal ({ast.unparse(keyword.value)[:40]})"
    return _map_values(values, case)


def _literal(node: ast.expr):
    """A literal, or the two spellings of one the tests use: ``"a b".split()`` and
    ``dict(k=<literal>, ...)``; ValueError for anything else."""
    if not isinstance(node, ast.Call) or node.args:
        return ast.literal_eval(node)
    func = node.func
    split = isinstance(func, ast.Attribute) and func.attr == "split" and not node.keywords
    if split and isinstance(func.value, ast.Constant) and isinstance(func.value.value, str):
        return func.value.value.split()
    if isinstance(func, ast.Name) and func.id == "dict" and all(k.arg for k in node.keywords):
        return {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    return ast.literal_eval(node)


def _map_values(values: dict, case: Case) -> str:
    shouldfail = values.pop("shouldfail", False)
    if not isinstance(shouldfail, bool):
        return "shouldfail= names an exception type"
    case.shouldfail = shouldfail
    check = values.pop("check_results", None)
    case.check_results = (not shouldfail) if check is None else bool(check)
    case.check_content = bool(values.pop("check_md5", True))
    if "shellcmd" in values:
        return _map_shellcmd(values, case)
    args = ["--cores", str(values.pop("cores", DEFAULT_CORES))]
    targets = [str(t) for t in values.pop("targets", None) or ()]
    for name, value in values.items():
        if name in NO_OPS:
            continue
        flags = _flags(name, value)
        if flags is None:
            return f"{name}={value!r:.40} has no command-line equivalent here"
        args += flags
    case.args = [*args, "--", *targets] if targets else args
    return ""


# Keyword arguments that are lists of values after one flag, and the flag.
LIST_FLAGS = {
    "until": "--until",
    "omit_from": "--omit-from",
    "forcerun": "--forcerun",
    "cache": "--cache",
    "configfiles": "--configfile",
    "envvars": "--envvars",
    "default_resources": "--default-resources",
}
# Keyword arguments that are name=value mappings after one flag, and the flag.
MAPPING_FLAGS = {
    "resources": "--resources",
    "overwrite_scatter": "--set-scatter",
    "overwrite_resource_scopes": "--set-resource-scopes",
    "group_components": "--group-components",
    "overwrite_groups": "--groups",
}
SWITCHES = {
    "forceall": "--forceall",
    "all_temp": "--all-temp",
    "force_incomplete": "--rerun-incomplete",
    "benchmark_extended": "--benchmark-extended",
}
VALUE_FLAGS = {
    "snakefile": "--snakefile",
    "nodes": "--jobs",
    "retries": "--retries",
    "max_threads": "--max-threads",
    "shadow_prefix": "--shadow-prefix",
}
# Harness features with no flag here; harmless only when off.
UNMAPPED_WHEN_ON = {"report", "archive", "edit_notebook", "generate_unit_tests",
                    "containerize", "cleanup_metadata", "conda_create_envs", "conda_list_envs",
                    "cluster", "wrapper_prefix", "default_storage_provider",
                    "default_storage_prefix", "tmpdir", "sigint_after",
                    "scheduler_ilp_solver"}  # fmt: skip


def _flags(name: str, value) -> list[str] | None:
    """Snakemake flags for one keyword argument of the harness's run(); None if none."""
    if name in LIST_FLAGS:
        return [LIST_FLAGS[name], *map(str, value)] if value else []
    if name in MAPPING_FLAGS:
        return [MAPPING_FLAGS[name], *(f"{k}={v}" for k, v in value.items())] if value else []
    if name in SWITCHES:
        return [SWITCHES[name]] if value else []
    if name in VALUE_FLAGS:
        return [] if value is None else [VALUE_FLAGS[name], str(value)]
    if name == "config":
        return ["--config", *(f"{k}={_config_value(v)}" for k, v in value.items())] if value else []
    if name == "overwrite_resources":
        pairs = [f"{rule}:{k}={v}" for rule, res in value.items() for k, v in res.items()]
        return ["--set-resources", *pairs] if pairs else []
    if name == "cleanup_scripts":
        return [] if value else ["--skip-script-cleanup"]
    if name == "executor":
        return [] if value == "local" else None
    if name in UNMAPPED_WHEN_ON:
        return [] if not value else None
    return None


def _config_value(value) -> str:
    """A --config value that Snakemake's parser (int, float, bool, YAML) reads back as
    ``value``."""
    return value if isinstance(value, str) else json.dumps(value)


# Flags that make a run something other than running the workflow, or that need what this
# machine lacks.
NOT_A_RUN = {"--dag", "--rulegraph", "--summary", "--detailed-summary", "--list-input-changes",
             "--list-code-changes", "--list-params-changes", "--generate-unit-tests", "-n",
             "--dryrun", "--dry-run", "--sdm", "--software-deployment-method", "--use-conda",
             "--use-apptainer", "--executor", "--cluster", "--report", "--archive", "--lint",
             "--touch", "--containerize", "--unlock", "--cleanup-metadata",
             "--default-storage-provider"}  # fmt: skip
SHELL_OPERATORS = {">", ">>", "<", "|", "&&", "||", ";", "2>&1", "&"}


def _map_shellcmd(values: dict, case: Case) -> str:
    """The test's own command line. The harness then passes none of its other keyword
    arguments to Snakemake, and neither does this."""
    command = values.pop("shellcmd")
    words = shlex.split(command)
    if any(w in SHELL_OPERATORS or w.startswith((">", "2>")) for w in words):
        return "shellcmd uses shell redirection or operators"
    flags = [w.split("=")[0] for w in words if w.startswith("-")]
    blocked = [f for f in flags if f in NOT_A_RUN]
    if blocked:
        return f"shellcmd uses {blocked[0]}"
    case.args = words[1:]
    case.shellcmd = True
    return ""


# ---- running one workflow


@dataclass
class Outcome:
    passed: bool
    reason: str = ""  # one line, for a failure
    kind: str = ""  # refused, job failed, missing output, output differs, timeout, ...
    seconds: float = 0.0
    log: str = ""  # the end of Snakemake's output, for a failed run


def knot_args(case: Case, storage: tuple[str, ...] = ()) -> list[str]:
    """The case's flags plus knot's on the emulator. --cores stays (it bounds the host's
    own jobs); --jobs bounds the Batch jobs at once unless the test set it."""
    args = [*case.args]
    extra = ["--executor", "knot", "--knot-emulator", "--latency-wait", "5"]
    if not {"-j", "--jobs"} & set(args) and not any(
        a.startswith("-j") and a[2:].isdigit() for a in args
    ):
        extra += ["--jobs", str(KNOT_JOBS)]
    return _before_targets(args, [*extra, *storage])


def _before_targets(args: list[str], extra: list[str]) -> list[str]:
    """``extra`` before a ``--`` that ends the flags, so targets stay targets."""
    if "--" in args:
        at = args.index("--")
        return [*args[:at], *extra, *args[at:]]
    return [*args, *extra]


def prepare(case: Case, tests: Path, root: Path) -> Path:
    """A fresh copy of the case's folder (the harness copies all of it, expected results
    included), as the working directory."""
    workdir = root / re.sub(r"[^\w.-]", "_", case.name)
    if workdir.exists():
        shutil.rmtree(workdir)
    shutil.copytree(tests / case.folder, workdir, symlinks=True)
    return workdir


def run_case(
    case: Case,
    tests: Path,
    root: Path,
    args: list[str],
    env: dict[str, str],
    timeout: float,
    found: Callable[[Path, str], bytes | None] | None = None,
    staged: Callable[[Path], None] | None = None,
) -> Outcome:
    """Run Snakemake with ``args`` on a fresh copy of the case's workflow and judge it as
    the harness does. ``found(workdir, relpath)`` reads an output (a local file by
    default; an S3 object in storage mode); ``staged(workdir)`` runs before Snakemake."""
    workdir = prepare(case, tests, root)
    if staged:
        staged(workdir)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Outcome(False, f"did not finish in {timeout:.0f} s", "timeout", timeout)
    seconds = time.monotonic() - started
    try:
        knot = "knot" in args
        outcome = judge(
            case, tests, workdir, done.returncode, done.stdout, found or read_local, knot
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    outcome.seconds = seconds
    if not outcome.passed or case.shouldfail:  # a failure the test expects: say why it came
        outcome.log = done.stdout[-LOG_TAIL:]
    return outcome


def read_local(workdir: Path, relpath: str) -> bytes | None:
    path = workdir / relpath
    return path.read_bytes() if path.is_file() else None


def judge(
    case: Case,
    tests: Path,
    workdir: Path,
    code: int,
    log: str,
    found: Callable[[Path, str], bytes | None],
    knot: bool = True,
) -> Outcome:
    """Pass or fail as the harness decides; a failure's kind is knot's when ``knot``."""
    if case.shouldfail:
        if code != 0:
            return Outcome(True)
        return Outcome(False, "succeeded where the test expects a failure", "did not fail")
    if code != 0:
        return Outcome(False, first_error(log), classify(log) if knot else "failed")
    if case.check_results:
        return compare(tests / case.folder / "expected-results", workdir, found, case.check_content)
    return Outcome(True)


def expected_files(results: Path) -> list[str]:
    """The files the harness checks: every file under expected-results/, not its
    .gitignore/.gitkeep nor Windows-only ``*_WIN`` variants."""
    if not results.is_dir():
        return []
    names = []
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results).as_posix()
        if (
            path.is_file()
            and path.name not in {".gitignore", ".gitkeep"}
            and not rel.endswith("_WIN")
        ):
            names.append(rel)
    return names


def compare(
    results: Path,
    workdir: Path,
    found: Callable[[Path, str], bytes | None],
    check_content: bool = True,
) -> Outcome:
    """Every expected file exists, and (with ``check_content``) holds the expected bytes
    once surrounding whitespace is stripped, as the harness compares."""
    if not results.is_dir():
        return Outcome(False, "the test has no expected-results/ folder", "no expected results")
    for rel in expected_files(results):
        got = found(workdir, rel)
        if got is None:
            return Outcome(False, f"expected output {rel} was not produced", "missing output")
        want = (results / rel).read_bytes()
        if check_content and _digest(got) != _digest(want):
            return Outcome(
                False,
                f"{rel} differs: {_preview(got)} (expected {_preview(want)})",
                "output differs",
            )
    return Outcome(True)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data.strip()).hexdigest()


def _preview(data: bytes) -> str:
    text = data.strip().decode(errors="replace").replace("\n", "\\n")
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


# ---- reading a failed run's log

# Lines that say a run failed without saying why.
_BOILERPLATE = re.compile(
    r"Shutting down|Complete log|Exiting because|Will exit after|Removing output files|"
    r"^Error in rule \S+:$|^Error executing rule|^Traceback|^\s*File \"|^\s+\^|"
    r"^Full Traceback|Storing output in storage|"
    r"^\s*(jobid|input|output|log|shell|conda-env|container|wildcards|resources|message|"
    r"reason|threads):|"
    r"^\s*\(one of the commands exited|Its whole log|knot: rule( \S+)? +jobs +failed|"
    r"^knot: (wall time|saved|Batch jobs:)|^\s*$"
)
_ERRORISH = re.compile(
    r"error|exception|refus|cannot|can't|could not|not found|missing|"
    r"failed|invalid|no such|denied|exited with",
    re.IGNORECASE,
)
_SUBMITTED = re.compile(r"knot: rule \S+.*Batch (array )?job")


_HEADER = re.compile(r"^(\w*(Error|Exception)):$")


def first_error(log: str) -> str:
    """The first line of the log that says what went wrong (an error's name alone on its
    line is joined to the line after it)."""
    lines = [line.strip() for line in log.splitlines()]
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        following = next((n for n in lines[index + 1 :] if n), "")
        if header and following and not _BOILERPLATE.search(following):
            return f"{line} {following}"[:240]
        if _ERRORISH.search(line) and not _BOILERPLATE.search(line):
            return line[:240]
    meaningful = [line for line in lines if line and not _BOILERPLATE.search(line)]
    return (meaningful[-1] if meaningful else "no output")[:240]


def classify(log: str) -> str:
    """job failed (a job ran and failed), or refused before any job (knot submitted
    nothing: for a workflow that passes locally, its checks stopped it)."""
    if re.search(r"Error in rule|Error executing rule|MissingOutputException", log):
        return "job failed"
    if not _SUBMITTED.search(log):
        return "refused before any job"
    return "error"


# ---- the sweep


@dataclass
class Result:
    case: str
    folder: str
    local: Outcome | None = None
    knot: Outcome | None = None


def select(cases: list[Case], only: list[str] | None, sample: int | None) -> list[Case]:
    """The mapped cases, narrowed to ``only`` (test or folder names), then a deterministic
    sample of ``sample`` (every k-th by name)."""
    chosen = [c for c in cases if not c.skip]
    if only:
        chosen = [c for c in chosen if c.name in only or c.folder in only]
    chosen.sort(key=lambda c: c.name)
    if sample and sample < len(chosen):
        step = len(chosen) / sample
        chosen = [chosen[int(i * step)] for i in range(sample)]
    return chosen


def sweep(
    cases: list[Case],
    tests: Path,
    root: Path,
    env: dict[str, str],
    timeout: float,
    storage: bool = False,
    progress: Callable[[str], None] = lambda line: None,
    workers: int = 1,
) -> list[Result]:
    """Each case locally, and under knot when it passed locally; ``workers`` cases at a
    time (each run is a Snakemake process of its own, in a folder of its own)."""

    def one(case: Case) -> Result:
        result = Result(case.name, case.folder)
        result.local = run_case(case, tests, root / "local", case.args, env, timeout)
        if result.local.passed:
            result.knot = knot_run(case, tests, root / "knot", env, timeout, storage)
        progress(_line(result))
        return result

    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        return list(pool.map(one, cases))


def knot_run(
    case: Case, tests: Path, root: Path, env: dict[str, str], timeout: float, storage: bool
) -> Outcome:
    """The case under knot on the emulator that ``env`` names (its KNOT_HOME), with its
    outputs in local files, or with ``storage`` under s3://BUCKET/<case>/ and read from
    there."""
    if not storage:
        return run_case(case, tests, root, knot_args(case), env, timeout)
    prefix = f"{case.name}-{time.time_ns()}"
    s3 = _s3(env)

    def from_bucket(workdir: Path, rel: str) -> bytes | None:
        try:
            return s3.get_object(Bucket=BUCKET, Key=f"{prefix}/{rel}")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None

    def upload(workdir: Path) -> None:
        """The workflow's own files are in storage too, where its rules look for inputs
        that no rule makes (Snakemake uploads outputs, never sources)."""
        for path in sorted(workdir.rglob("*")):
            if path.is_file() and "expected-results" not in path.relative_to(workdir).parts:
                key = f"{prefix}/{path.relative_to(workdir).as_posix()}"
                s3.upload_file(str(path), BUCKET, key)

    flags = storage_flags(env, prefix)
    args = knot_args(case, flags)
    return run_case(case, tests, root, args, env, timeout, from_bucket, upload)


def storage_flags(env: dict[str, str], prefix: str) -> tuple[str, ...]:
    return (
        "--default-storage-provider",
        "s3",
        "--default-storage-prefix",
        f"s3://{BUCKET}/{prefix}",
        "--storage-s3-endpoint-url",
        env["AWS_ENDPOINT_URL"],
        "--storage-s3-access-key",
        "testing",
        "--storage-s3-secret-key",
        "testing",
        "--storage-s3-region",
        REGION,
    )


def _s3(env: dict[str, str]):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _line(result: Result) -> str:
    def show(outcome: Outcome | None) -> str:
        if outcome is None:
            return "-"
        verdict = "pass" if outcome.passed else f"FAIL ({outcome.kind}: {outcome.reason})"
        return f"{verdict} in {outcome.seconds:.0f} s"

    return f"{result.case}: local {show(result.local)}; knot {show(result.knot)}"


# ---- an emulator of its own


def run_env(root: Path) -> dict[str, str]:
    """The environment of every run: dummy credentials, no real AWS configuration, no
    SNAKEMAKE_* settings from the caller's shell, and knot's home under ``root``."""
    keep = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAKEMAKE_", "OPENBLAS_"))
    }
    return {
        **keep,
        "KNOT_HOME": str(root / "knot-home"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def _knot_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake_executor_knot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"knot {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


@contextmanager
def emulator(root: Path) -> Iterator[dict[str, str]]:
    """Start an emulator under ``root`` with the bucket for storage mode; yield the run
    environment pointing at it; stop it after."""
    env = run_env(root)
    _knot_cli("emulator", "start", "--port", "0", "--stop-with", str(os.getpid()), env=env)
    try:
        state = json.loads(_knot_cli("emulator", "status", env=env))
        env["AWS_ENDPOINT_URL"] = state["endpoint"]
        ensure_bucket(env)
        # The stack first, once: runs that start together would each try to create it
        # (and its image repository) and all but one fail.
        _knot_cli("--emulator", "infra", "up", env=env)
        yield env
    finally:
        _knot_cli("emulator", "stop", env=env)


def ensure_bucket(env: dict[str, str]) -> None:
    s3 = _s3(env)
    try:
        s3.head_bucket(Bucket=BUCKET)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=BUCKET)


# ---- the report


@dataclass
class Summary:
    version: str
    tests: int  # upstream tests that call run()
    folders: int  # distinct workflow folders among them
    mapped: int
    skipped: dict[str, int]  # reason -> tests
    selected: int
    local_passed: int
    knot_run: int
    knot_passed: int
    shouldfail_passed: int  # knot passes among tests that expect a failure
    seconds: float
    results: list[Result]

    @property
    def rate(self) -> float | None:
        return self.knot_passed / self.knot_run if self.knot_run else None

    def failures(self) -> list[tuple[str, Outcome]]:
        return [(r.case, r.knot) for r in self.results if r.knot and not r.knot.passed]

    def text(self) -> str:
        rate = f"{self.rate:.0%}" if self.rate is not None else "-"
        lines = [
            f"Snakemake {self.version}: {self.tests} tests run a workflow "
            f"({self.folders} folders); "
            f"{self.mapped} mapped to command-line flags; {self.selected} selected",
            f"local: {self.local_passed} of {self.selected} pass; knot: {self.knot_passed} of "
            f"{self.knot_run} pass ({rate}; {self.shouldfail_passed} of those passes are "
            f"tests that expect a failure); {self.seconds:.0f} s",
        ]
        times = sorted(r.knot.seconds for r in self.results if r.knot)
        if times:
            lines.append(f"knot run per workflow: median {times[len(times) // 2]:.0f} s, "
                         f"longest {times[-1]:.0f} s")  # fmt: skip
        lines += [f"FAIL {name}: {o.kind}: {o.reason}" for name, o in self.failures()]
        lines += [f"local FAIL {r.case}: {r.local.kind}: {r.local.reason}"
                  for r in self.results if r.local and not r.local.passed]  # fmt: skip
        return "\n".join(lines)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["rate"] = self.rate
        return data


def _skip_group(reason: str) -> str:
    """A skip reason without the value that made it, so that like reasons count together."""
    for kind in ("has no command-line equivalent here", "is not a literal"):
        if kind in reason:
            return f"{reason.split('=')[0]}= {kind}"
    return reason


def summarize(version: str, cases: list[Case], chosen: list[Case], results: list[Result],
              seconds: float) -> Summary:  # fmt: skip
    skipped: dict[str, int] = {}
    for case in cases:
        if case.skip:
            reason = _skip_group(case.skip)
            skipped[reason] = skipped.get(reason, 0) + 1
    shouldfail = {c.name for c in chosen if c.shouldfail}
    knot = [r for r in results if r.knot is not None]
    return Summary(
        version=version,
        tests=len(cases),
        folders=len({c.folder for c in cases if c.folder}),
        mapped=sum(1 for c in cases if not c.skip),
        skipped=dict(sorted(skipped.items(), key=lambda kv: -kv[1])),
        selected=len(chosen),
        local_passed=sum(1 for r in results if r.local and r.local.passed),
        knot_run=len(knot),
        knot_passed=sum(1 for r in knot if r.knot and r.knot.passed),
        shouldfail_passed=sum(1 for r in knot if r.knot and r.knot.passed and r.case in shouldfail),
        seconds=seconds,
        results=results,
    )


def measure(
    only: list[str] | None = None,
    sample: int | None = None,
    timeout: float = 600,
    storage: bool = False,
    progress: Callable[[str], None] = lambda line: None,
    workers: int = 1,
) -> Summary:
    tests = snakemake_tests()
    cases = read_cases(tests)
    chosen = select(cases, only, sample)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="knot-conformance-") as tmp, emulator(Path(tmp)) as env:
        results = sweep(chosen, tests, Path(tmp), env, timeout, storage, progress, workers)
    return summarize(snakemake_version(), cases, chosen, results, time.monotonic() - started)


def conformance_rows(sample: int | None = None) -> list[Row]:
    """For ``python -m benchmarks --only conformance``: the sweep (or a sample of it) in
    local-files mode."""
    summary = measure(sample=sample, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(summary.text(), file=sys.stderr)
    section = f"conformance (Snakemake {summary.version} tests)"
    return [
        Row(section, "workflows mapped to flags", summary.mapped, summary.tests, "all tests"),
        Row(section, "pass under --executor local", summary.local_passed, summary.selected, "run"),
        Row(section, "pass under knot (local files)", summary.knot_passed, summary.knot_run,
            "local passes"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.conformance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="tests or folders to run")
    parser.add_argument("--sample", type=int, help="a deterministic sample of N mapped tests")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run (600)")
    parser.add_argument(
        "--storage", action="store_true", help="knot's runs with --default-storage-provider s3"
    )
    parser.add_argument("--workers", type=int, default=1, help="workflows run at once (1)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--list", action="store_true", help="list the tests and exit")
    args = parser.parse_args(argv)
    if args.list:
        for case in read_cases(snakemake_tests()):
            print(f"{case.name} ({case.folder}): {case.skip or ' '.join(case.args)}")
        return 0
    summary = measure(
        args.only,
        args.sample,
        args.timeout,
        args.storage,
        progress=lambda line: print(line, flush=True),
        workers=args.workers,
    )
    print(summary.text())
    if args.json:
        args.json.write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
