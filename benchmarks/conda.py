"""Cold and warm build of a rule image with a conda: environment, with the real solver,
installer and Docker engine (image/conda.py, as ImageBuilder builds it).

No conda channel is reachable here, so the channel is made here (tests/condachannel.py)
and holds, besides the small tool packages, one bulk package of ``BULK_FILES`` files
(``BULK_MIB`` MiB of random bytes) so that download, install and the layer copy have
something to move. Cold: a new environment (its bulk bytes are new each run) and an empty
knot home: solve, download, check, install on the host, then the image build, whose base
and venv layers come from docker's cache as they do for every rule image after the first.
Warm: the rule's code edited, the environment unchanged (the host's installed folder and
docker's cached layer are reused). Every image made here is removed after.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from snakemake_executor_knot.image import conda
from snakemake_executor_knot.image.builder import docker_client
from snakemake_executor_knot.image.dockerfile import LIB, ImageSpec, build_context
from tests.condachannel import conda_package, make_channel

from .images import BASE, TAG, _remove, build
from .report import Row, Target

BULK_FILES = 400
BULK_MIB = 40
PLATFORM = "linux/amd64"


def _channel(folder: Path) -> str:
    chunk = BULK_MIB * 1024 * 1024 // BULK_FILES
    files = {f"share/bulk/{i:04d}.bin": (os.urandom(chunk), 0o644) for i in range(BULK_FILES)}
    conda_package(folder, "knot-bulk", "1.0", files)
    return make_channel(folder)


def _spec(layer: conda.CondaLayer, edit: str) -> ImageSpec:
    module = f"# rule code {edit}\n".encode()
    return ImageSpec(
        rule="greet", base_image=BASE, conda=layer, files={f"{LIB}/knot_rule.py": module}
    )


def conda_rows() -> list[Row]:
    docker = docker_client()
    tag = TAG.format(name="conda")
    with tempfile.TemporaryDirectory(prefix="knot-bench-conda-") as tmp:
        channel = _channel(Path(tmp, "channel"))
        os.environ["KNOT_HOME"] = str(Path(tmp, "home"))
        text = f"channels: ['{channel}']\ndependencies: [knot-greet, knot-bulk]\n"
        env = conda.read_conda_file("greet", "envs/greet.yaml", text)
        try:
            start = time.perf_counter()
            layer = conda.solve(env, PLATFORM)
            solved = time.perf_counter() - start
            conda.installed_tree(layer)
            host = time.perf_counter() - start
            cold = build(docker, build_context(_spec(layer, "v1")), tag)
            cold_total = time.perf_counter() - start
            start = time.perf_counter()
            warm_layer = conda.solve(env, PLATFORM)  # a new run solves again (no lock)
            warm = build(docker, build_context(_spec(warm_layer, "v2")), tag)
            warm_total = time.perf_counter() - start
        finally:
            os.environ.pop("KNOT_HOME", None)
            _remove(docker, tag)
    layers = [step for step in warm.rebuilt if step.startswith(("RUN", "COPY", "ADD"))]
    same, seconds, files = locked_cold_builds(docker)
    return [
        Row("conda", "solve (s)", solved),
        Row("conda", "cold: solve, download, install on the host (s)", host),
        Row("conda", "cold build, total (s)", cold_total, note=f"image {cold.size_mib:.0f} MiB"),
        Row("conda", "warm build after editing the rule's code (s) vs cold", warm_total,
            cold_total, "cold"),
        Row("conda", "layers rebuilt after editing the rule's code", len(layers),
            target=Target("==", 1), note="rebuilt: " + "; ".join(layers)),
        Row("conda", "knot lock, then 2 cold builds (no cache, empty knot homes): "
            "environment listings in the images equal", int(same), target=Target("==", 1),
            note=f"{files} files and links; builds {seconds[0]:.1f} s and {seconds[1]:.1f} s"),
    ]  # fmt: skip


LOCKED_SNAKEFILE = """
rule greet:
    output: "out.txt"
    conda: "envs/greet.yaml"
    shell: "knot-greet x > {output}"
"""

# Inside an image: every file and link of the environment with its SHA-256 (or target), and
# conda-meta's package list, sorted. Run by the image's own Python.
LISTING = """
import hashlib, os, sys
root = sys.argv[1]
for folder, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(folder, name)
        if os.path.islink(path):
            print("link", os.path.relpath(path, root), os.readlink(path))
        else:
            print(hashlib.sha256(open(path, "rb").read()).hexdigest(), os.path.relpath(path, root))
"""


def locked_cold_builds(docker) -> tuple[bool, list[float], int]:
    """``knot lock``'s pins (lock/conda.py) written once, then two builds from them, each
    with an empty knot home (download, check, install) and without docker's cache; the
    environment as each image holds it, compared."""
    from snakemake_executor_knot.lock.conda import (
        conda_lock_path,
        lock_environments,
        locked_layer,
        write_conda_lock,
    )
    from snakemake_executor_knot.lock.load import load_workflow

    listings, seconds = [], []
    with tempfile.TemporaryDirectory(prefix="knot-bench-conda-lock-") as tmp:
        channel = make_channel(Path(tmp, "channel"))
        text = f"channels: ['{channel}']\ndependencies: [knot-greet]\n"
        folder = Path(tmp, "wf")
        (folder / "envs").mkdir(parents=True)
        (folder / "envs" / "greet.yaml").write_text(text)
        (folder / "Snakefile").write_text(LOCKED_SNAKEFILE)
        os.environ["KNOT_HOME"] = str(Path(tmp, "home-lock"))
        workflow = load_workflow(folder / "Snakefile")
        lock = conda_lock_path(workflow)
        write_conda_lock(lock, PLATFORM, lock_environments(workflow, PLATFORM))
        env = conda.read_conda_file("greet", "envs/greet.yaml", text)
        for run in ("1", "2"):
            os.environ["KNOT_HOME"] = str(Path(tmp, f"home-{run}"))
            tag = TAG.format(name=f"conda-locked-{run}")
            try:
                start = time.perf_counter()
                layer = locked_layer(lock, env, text, PLATFORM, locked=True)
                build(docker, build_context(_spec(layer, "v1")), tag, nocache=True)
                seconds.append(time.perf_counter() - start)
                listings.append(_image_listing(docker, tag, layer.prefix))
            finally:
                os.environ.pop("KNOT_HOME", None)
                _remove(docker, tag)
    same = listings[0] == listings[1] and bool(listings[0])
    return same, seconds, len(listings[0].splitlines())


def _image_listing(docker, tag: str, prefix: str) -> bytes:
    return docker.containers.run(
        tag, ["-c", LISTING, prefix], entrypoint="python3", remove=True, network_mode="host"
    )
