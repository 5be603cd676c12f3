"""End to end: tests/workflows/containers (issue 18, parts 6-9) under knot, in local-files
mode and in storage mode, gives the bytes `--executor local` gives.

- `docker://` containers named with a wildcard and by a function, one image per distinct
  container, one of them without any Python (knot brings its interpreter);
- shell commands calling the workflow's own scripts, a package run with `python -m`, and
  a config file read without being declared;
- `resources: knot_apt=...` (jq and bc, which knot's base image lacks);
- `benchmark: repeat(..., 3)`: three rows.

The two container images are built here from knot's base image: `nopython` has python3
purged with apt, `plain` keeps it. On AWS a `docker://` reference is pulled from its
registry by the build's `FROM`; here both exist in the local engine, which `FROM` uses.
"""

from __future__ import annotations

import io
import re
import subprocess
from types import SimpleNamespace

import boto3
import docker
import pytest

from snakemake_executor_knot.cli import main
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.image.builder import base_reference, docker_client
from snakemake_executor_knot.image.dockerfile import render_dockerfile
from snakemake_executor_knot.lock.format import LOCK_FILE, read_lock
from snakemake_executor_knot.lock.load import load_workflow
from snakemake_executor_knot.run.plans import build_target, plan_rule

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

WORKFLOW = ROOT / "tests" / "workflows" / "containers"
IMAGES = {
    "nopython": (
        "RUN apt-get purge -y --auto-remove 'python3*' 'libpython3*' && "
        "! command -v python3 && ! ls -d /usr/lib/python3*"
    ),
    "plain": "RUN command -v python3",
}


@pytest.fixture(scope="module")
def container_images(base_image):
    """The workflow's two images, tagged as its `container:` URIs name them."""
    engine = docker.from_env()
    for flavour, step in IMAGES.items():
        dockerfile = f"FROM {base_image}\nUSER root\n{step}\nRUN echo {flavour} > /etc/flavour\n"
        engine.images.build(
            fileobj=io.BytesIO(dockerfile.encode()),
            tag=f"knot-test-containers-{flavour}:1",
            network_mode="host",
            rm=True,
            forcerm=True,
        )
    return engine


def _local_reference(tmp_path):
    local_dir = copy_workflow(WORKFLOW, tmp_path / "local")
    before = file_digests(local_dir)
    done = snakemake(local_dir, "--cores", "2")
    assert done.returncode == 0, done.stdout[-3000:]
    return local_dir, before, outputs_of(local_dir, before)


def _benchmark_rows(text: str) -> list[str]:
    header, *rows = text.splitlines()
    assert header.split("\t")[:2] == ["s", "h:m:s"], header
    return rows


def test_containers_apt_sources_and_repeats_match_local(container_images, emulator_env, tmp_path):
    local_dir, before, local = _local_reference(tmp_path)
    assert len(local) == 10, sorted(local)  # 9 outputs and data/in.txt
    assert len(_benchmark_rows((local_dir / "benchmarks/bench.tsv").read_text())) == 3

    knot_dir = copy_workflow(WORKFLOW, tmp_path / "knot")
    result = snakemake(knot_dir, *KNOT)
    assert result.returncode == 0, result.stdout[-6000:]
    assert outputs_of(knot_dir, before) == local
    assert len(_benchmark_rows((knot_dir / "benchmarks/bench.tsv").read_text())) == 3
    _check_images(container_images)

    storage_dir = copy_workflow(WORKFLOW, tmp_path / "storage")
    stored = snakemake(storage_dir, *KNOT, *storage_args(emulator_env, "knot-e2e", "containers"))
    assert stored.returncode == 0, stored.stdout[-6000:]
    in_bucket = bucket_digests("knot-e2e", "containers/")
    bench = in_bucket.pop("benchmarks/bench.tsv")
    assert bench and in_bucket == local
    body = boto3.client("s3").get_object(Bucket="knot-e2e", Key="containers/benchmarks/bench.tsv")
    assert len(_benchmark_rows(body["Body"].read().decode())) == 3


def _check_images(engine) -> None:
    """Each `greet` job ran in an image built on its own container: one per flavour, and
    the nopython one has no Python of its own, only knot's under /opt/knot."""
    batch = boto3.client("batch")
    images = {
        d["containerProperties"]["image"]
        for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    }
    flavours: dict[str, str] = {}
    for image in images:
        found = _in_image(image, "cat /etc/flavour 2>/dev/null || true").strip()
        if found:
            flavours.setdefault(found, image)
    assert set(flavours) == {"nopython", "plain"}, flavours
    probe = "test ! -e /usr/bin/python3 && /opt/knot/venv/bin/python -c 'import boto3'"
    assert _in_image(flavours["nopython"], probe + " && echo ok").strip() == "ok"


def _in_image(image: str, command: str) -> str:
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


APT_SNAKEFILE = """\
rule tools:
    output: "out/tools.txt"
    resources: knot_apt="jq"
    shell: "jq --version > {output}"
"""


def test_knot_lock_pins_the_apt_closure_and_a_locked_plan_installs_it(emulator, tmp_path):
    """'knot lock' asks apt-get in the base image what installing jq brings (jq and the
    libraries it needs), pins each to its exact version, and a run following the lock
    installs exactly those."""
    (tmp_path / "Snakefile").write_text(APT_SNAKEFILE)
    snakefile = str(tmp_path / "Snakefile")
    assert main(["lock", "--snakefile", snakefile, "--base-image", emulator["base_image"]]) == 0
    pins = read_lock(tmp_path / LOCK_FILE).rules["tools"].apt
    names = {pin.partition("=")[0] for pin in pins}
    assert {"jq", "libjq1"} <= names, pins
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]+=[A-Za-z0-9.+~:-]+", pin) for pin in pins)

    workflow = load_workflow(tmp_path / "Snakefile")
    config = KnotConfig(base_image=emulator["base_image"], locked=True)
    engine = docker_client()
    target = build_target(workflow, {}, config, lambda base: base_reference(engine, base))
    job = SimpleNamespace(rule=workflow.get_rule("tools"), resources={"knot_apt": "jq"})
    image = plan_rule(workflow, job, config, target).image
    assert image is not None and image.apt == pins
    assert f"--no-install-recommends {' '.join(pins)} &&" in render_dockerfile(image)
