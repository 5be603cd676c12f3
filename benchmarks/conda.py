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
    return [
        Row("conda", "solve (s)", solved),
        Row("conda", "cold: solve, download, install on the host (s)", host),
        Row("conda", "cold build, total (s)", cold_total, note=f"image {cold.size_mib:.0f} MiB"),
        Row("conda", "warm build after editing the rule's code (s) vs cold", warm_total,
            cold_total, "cold"),
        Row("conda", "layers rebuilt after editing the rule's code", len(layers),
            target=Target("==", 1), note="rebuilt: " + "; ".join(layers)),
    ]  # fmt: skip
