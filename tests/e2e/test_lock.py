"""End to end: ``knot lock`` on a real workflow (PyPI's hashes, the local base image's
digest), cold docker builds from the lock, and ``snakemake --executor knot --knot-emulator``
following, refreshing or refusing the lock."""

from __future__ import annotations

import contextlib
import io
import uuid
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from docker.errors import NotFound
from packaging.utils import canonicalize_name

from snakemake_executor_knot import __version__
from snakemake_executor_knot.cli import main
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.image.builder import base_reference, docker_client
from snakemake_executor_knot.image.dockerfile import build_context, pip_build_args
from snakemake_executor_knot.lock.format import LOCK_FILE, read_lock
from snakemake_executor_knot.lock.load import load_workflow
from snakemake_executor_knot.run.plans import build_target, plan_rule

from .helpers import snakemake

pytestmark = pytest.mark.e2e

SNAKEFILE = """\
import scipy.special

rule all:
    input: "out/gamma.txt", "out/plain.txt"

rule fit:
    output: "out/gamma.txt"
    run:
        with open(output[0], "w") as handle:
            handle.write(f"{scipy.special.gamma(5):.1f}\\n")

rule plain:
    output: "out/plain.txt"
    shell: "echo plain > {output}"
"""
KNOT = ("--executor", "knot", "--knot-emulator", "--jobs", "2", "--latency-wait", "5")


@pytest.fixture(scope="module")
def locked_workflow(tmp_path_factory, emulator) -> Path:
    """A workflow folder with a knot.lock written by 'knot lock' (real PyPI hashes)."""
    folder = tmp_path_factory.mktemp("locked")
    (folder / "Snakefile").write_text(SNAKEFILE)
    code = main(
        ["lock", "--snakefile", str(folder / "Snakefile"), "--base-image", emulator["base_image"]]
    )
    assert code == 0
    return folder


@pytest.fixture
def workflow_copy(locked_workflow, tmp_path) -> Path:
    for name in ("Snakefile", LOCK_FILE):
        (tmp_path / name).write_bytes((locked_workflow / name).read_bytes())
    return tmp_path


def test_lock_of_a_scipy_rule_pins_numpy_with_hashes(locked_workflow, emulator):
    lock = read_lock(locked_workflow / LOCK_FILE)
    pins = {pin.name: pin for pin in lock.rules["fit"].requirements}
    assert pins["scipy"].version == version("scipy")
    assert pins["numpy"].version == version("numpy")
    assert pins["boto3"].version == version("boto3")  # knot's runtime is locked too
    assert all(pin.hashes for pin in pins.values())
    assert "numpy" not in {pin.name for pin in lock.rules["plain"].requirements}
    assert (lock.knot, lock.platform, lock.base_image.name) == (
        __version__,
        "linux/amd64",
        emulator["base_image"],
    )
    engine = docker_client()
    assert lock.base_image.digest == engine.images.get(emulator["base_image"]).id


def locked_spec(folder: Path, base_image: str):
    """The 'fit' image spec as a run plans it from the folder's knot.lock."""
    workflow = load_workflow(folder / "Snakefile")
    config = KnotConfig(base_image=base_image, locked=True)
    engine = docker_client()
    target = build_target(workflow, {}, config, lambda base: base_reference(engine, base))
    job = SimpleNamespace(rule=workflow.get_rule("fit"), resources={})
    return plan_rule(workflow, job, config, target).image


def cold_build(engine, spec, tag: str) -> None:
    """A build with no layer cache, as 'docker build --no-cache'."""
    output = engine.api.build(
        fileobj=io.BytesIO(build_context(spec)),
        custom_context=True,
        tag=tag,
        nocache=True,
        rm=True,
        forcerm=True,
        network_mode="host",
        platform=spec.platform,
        buildargs=pip_build_args(),
        decode=True,
    )
    lines = list(output)
    errors = [line for line in lines if "error" in line]
    assert not errors, "".join(str(line) for line in lines[-30:])


def pip_freeze(engine, tag: str) -> list[str]:
    out = engine.containers.run(
        tag, ["/opt/knot/venv/bin/pip", "freeze", "--all"], remove=True, network_mode="host"
    )
    return [
        line for line in out.decode().splitlines() if not line.startswith(("pip==", "setuptools=="))
    ]


def test_two_cold_builds_from_one_lock_freeze_identically(locked_workflow, emulator):
    spec = locked_spec(locked_workflow, emulator["base_image"])
    assert spec.locked and spec.require_hashes and spec.platform == "linux/amd64"
    engine = docker_client()
    tags = [f"knot-lock-test:{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        for tag in tags:
            cold_build(engine, spec, tag)
        first, second = (pip_freeze(engine, tag) for tag in tags)
    finally:
        for tag in tags:
            with contextlib.suppress(NotFound):
                engine.images.remove(tag, force=True)
    assert first == second
    lock = read_lock(locked_workflow / LOCK_FILE)
    locked = {(pin.name, pin.version) for pin in lock.rules["fit"].requirements}
    frozen = {(canonicalize_name(n), v) for n, _, v in (line.partition("==") for line in first)}
    assert frozen == locked


def stacks(emulator: dict, name: str) -> list:
    cfn = boto3.client(
        "cloudformation",
        endpoint_url=emulator["endpoint"],
        region_name=emulator["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == name]


def refused(folder: Path, emulator: dict, *flags: str) -> str:
    """Run knot on ``folder`` with a fresh stack name; it must fail before creating it."""
    stack = f"lock-{uuid.uuid4().hex[:8]}"
    before = (folder / LOCK_FILE).read_bytes()
    result = snakemake(folder, *KNOT, "--knot-stack-name", stack, *flags, timeout=300)
    assert result.returncode != 0, result.stdout[-3000:]
    assert stacks(emulator, stack) == []
    assert (folder / LOCK_FILE).read_bytes() == before
    return result.stdout


def test_locked_run_refuses_a_snakefile_whose_imports_changed(
    workflow_copy, emulator_env, emulator
):
    snakefile = workflow_copy / "Snakefile"
    snakefile.write_text(
        SNAKEFILE.replace("import scipy.special\n", "import scipy.special\nimport yaml\n").replace(
            'handle.write(f"', 'handle.write(yaml.safe_dump(1) + f"'
        )
    )
    output = refused(workflow_copy, emulator, "--knot-locked")
    assert "no longer matches the Snakefile, and --knot-locked is set" in output, output[-3000:]
    assert "rule 'fit'" in output and "'fit' now imports scipy, yaml" in output


@pytest.mark.parametrize(
    ("edit", "flags", "expected"),
    [
        (lambda text: text.replace("rules:", "rules: [", 1), (), "is not valid YAML"),
        (lambda text: text.replace(f"knot: {__version__}", "knot: 0.0.1"), (), "knot 0.0.1"),
        (lambda text: text, ("--knot-instance-types", "m7g"), "platform linux/arm64"),
        (
            lambda text: text.replace("  plain:", "  gone:"),
            ("--knot-locked",),
            "lacks rule 'plain'",
        ),
    ],
    ids=["corrupt", "other-knot-version", "other-platform", "other-rule-set"],
)
def test_bad_lock_fails_before_anything_is_created(
    workflow_copy, emulator_env, emulator, edit, flags, expected
):
    path = workflow_copy / LOCK_FILE
    path.write_text(edit(path.read_text()))
    output = refused(workflow_copy, emulator, *flags)
    assert expected in output and "knot lock" in output, output[-3000:]


def test_run_follows_the_lock_and_a_code_edit_keeps_it(workflow_copy, emulator_env):
    before = (workflow_copy / LOCK_FILE).read_bytes()
    first = snakemake(workflow_copy, *KNOT, "--knot-locked")
    assert first.returncode == 0, first.stdout[-6000:]
    assert (workflow_copy / "out" / "gamma.txt").read_text() == "24.0\n"
    # An edit to the run block that keeps its imports leaves the lock as it is.
    snakefile = workflow_copy / "Snakefile"
    snakefile.write_text(snakefile.read_text().replace(":.1f}", ":.2f}"))
    second = snakemake(workflow_copy, *KNOT, "--knot-locked", "--forceall")
    assert second.returncode == 0, second.stdout[-6000:]
    assert (workflow_copy / "out" / "gamma.txt").read_text() == "24.00\n"
    assert (workflow_copy / LOCK_FILE).read_bytes() == before


def test_plan_without_locked_refreshes_a_drifted_lock(workflow_copy, emulator, caplog):
    snakefile = workflow_copy / "Snakefile"
    snakefile.write_text(
        SNAKEFILE + '\nrule extra:\n    output: "x.txt"\n    shell: "touch {output}"\n'
    )
    before = read_lock(workflow_copy / LOCK_FILE)
    workflow = load_workflow(snakefile)
    config = KnotConfig(base_image=emulator["base_image"])
    target = build_target(workflow, {}, config, lambda base: base.name)
    after = read_lock(workflow_copy / LOCK_FILE)
    assert target.lock == after and set(after.rules) == {"fit", "plain", "extra"}
    assert after.rules["fit"] == before.rules["fit"]  # unchanged rules keep their pins
    assert "re-pinned: extra; dropped: none" in caplog.text


def test_locked_plan_refuses_a_local_base_image_that_moved(locked_workflow, tmp_path):
    lock = (locked_workflow / LOCK_FILE).read_text()
    digest = read_lock(locked_workflow / LOCK_FILE).base_image.digest
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / LOCK_FILE).write_text(lock.replace(digest, "sha256:" + "0" * 64))
    with pytest.raises(ConfigError, match="has no registry digest to pull the locked one by"):
        locked_spec(tmp_path, read_lock(tmp_path / LOCK_FILE).base_image.name)


def test_graviton_images_on_an_x86_engine_without_qemu_fail_first(tmp_path, emulator_env, emulator):
    # This engine runs on x86_64 and has no binfmt handlers registered (checked here, so the
    # test says so if the machine changes rather than passing for another reason).
    assert docker_client().info()["Architecture"] == "x86_64"
    assert not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    stack = f"lock-{uuid.uuid4().hex[:8]}"
    result = snakemake(tmp_path, *KNOT, "--knot-stack-name", stack, "--knot-instance-types", "m7g")
    assert result.returncode != 0
    assert "must be built for linux/arm64" in result.stdout, result.stdout[-3000:]
    assert "qemu-user-static" in result.stdout
    assert stacks(emulator, stack) == []
