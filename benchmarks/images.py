"""Incremental build and image sizes (issue item 5), with the real Docker engine.

A rule image is built from knot's own build context (``dockerfile.build_context``), as
``ImageBuilder`` builds it: cold (no layer cache), then after editing the run block. The
comparison image is what the aws-batch plugin runs in every job: Snakemake with the
plugin's dependencies installed on the same base. Every image made here is removed after.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import tarfile
import time
from dataclasses import dataclass

from docker.errors import ImageNotFound

from snakemake_executor_knot.image.builder import docker_client
from snakemake_executor_knot.image.dockerfile import LIB, ImageSpec, build_context, pip_build_args

from .report import Row, Target

BASE = "knot-base:py3.11"
TAG = "knot-bench/{name}:latest"
MIB = 1024 * 1024

# A generated rule module of the shape rules.module writes (see docs/internals.md): the run
# block of a Monte-Carlo sampling rule that needs numpy.
RULE_MODULE = """\
from knot_runtime.prelude import *
import numpy as np


def knot_run(input, output, params, wildcards, threads, resources, log, rule, jobid):
    rng = np.random.default_rng(int(wildcards.chunk))
    xy = rng.random((params.points, 2))
    hits = int(np.count_nonzero((xy * xy).sum(axis=1) <= 1.0))
    with open(output[0], "w") as fh:
        fh.write(f"{{wildcards.chunk}}\\t{{params.points}}\\t{{hits}}\\n")  # {edit}
"""

# What the aws-batch plugin's jobs run: `python -m snakemake` with its storage plugin.
SNAKEMAKE_DOCKERFILE = f"""FROM {BASE}
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir \\
    snakemake=={{snakemake}} snakemake-storage-plugin-s3=={{storage}} \\
    snakemake-executor-plugin-aws-batch=={{plugin}} boto3=={{boto3}}
ENV PATH=/opt/venv/bin:$PATH
"""


@dataclass(frozen=True)
class Build:
    seconds: float
    size_mib: float
    rebuilt: list[str]  # the Dockerfile steps that did not come from the layer cache


def rule_spec(edit: str, requirements: tuple[str, ...]) -> ImageSpec:
    module = RULE_MODULE.format(edit=edit).encode()
    return ImageSpec(
        rule="sample", base_image=BASE, requirements=requirements,
        files={f"{LIB}/knot_rule.py": module},
    )  # fmt: skip


def build(docker, context: bytes, tag: str, nocache: bool = False) -> Build:
    start = time.perf_counter()
    output = docker.api.build(
        fileobj=io.BytesIO(context), custom_context=True, tag=tag, network_mode="host",
        rm=True, forcerm=True, decode=True, nocache=nocache, buildargs=pip_build_args(),
    )  # fmt: skip
    rebuilt = rebuilt_steps(output, tag)
    seconds = time.perf_counter() - start
    size = docker.images.get(tag).attrs["Size"] / MIB
    return Build(seconds, size, rebuilt)


def rebuilt_steps(output, tag: str) -> list[str]:
    """The steps of a classic-builder output stream that did not say "Using cache"."""
    steps: list[list] = []  # [instruction, cached]
    for line in output:
        if "error" in line or "errorDetail" in line:
            raise RuntimeError(f"building {tag} failed: {line}")
        text = line.get("stream", "")
        if text.startswith("Step "):
            steps.append([text.split(" : ", 1)[-1].strip(), False])
        elif "Using cache" in text and steps:
            steps[-1][1] = True
    return [instruction for instruction, cached in steps if not cached]


def dockerfile_context(text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def snakemake_image(docker) -> Build:
    def version(name: str) -> str:
        return importlib.metadata.version(name)

    text = SNAKEMAKE_DOCKERFILE.format(
        snakemake=version("snakemake"), storage=version("snakemake-storage-plugin-s3"),
        plugin=version("snakemake-executor-plugin-aws-batch"), boto3=version("boto3"),
    )  # fmt: skip
    return build(docker, dockerfile_context(text), TAG.format(name="snakemake"))


def image_rows() -> list[Row]:
    docker = docker_client()
    numpy = (f"numpy=={importlib.metadata.version('numpy')}",)
    tags = [TAG.format(name=n) for n in ("rule", "plain", "snakemake")]
    try:
        cold = build(docker, build_context(rule_spec("v1", numpy)), tags[0], nocache=True)
        edited = build(docker, build_context(rule_spec("v2", numpy)), tags[0])
        plain = build(docker, build_context(rule_spec("v1", ())), tags[1])
        reference = snakemake_image(docker)
    finally:
        for tag in tags:
            _remove(docker, tag)
    return _rows(cold, edited, plain, reference)


def _rows(cold: Build, edited: Build, plain: Build, reference: Build) -> list[Row]:
    # Steps that make file-system layers; ENV, USER and the like after them always rerun.
    layers = [step for step in edited.rebuilt if step.startswith(("RUN", "COPY", "ADD"))]
    return [
        Row("images", "build after editing the run block (s) vs cold build", edited.seconds,
            cold.seconds, "cold"),
        Row("images", "layers rebuilt after editing the run block", len(layers),
            target=Target("==", 1), note="rebuilt: " + "; ".join(layers)),
        Row("images", "rule image with numpy (MiB) vs Snakemake image", cold.size_mib,
            reference.size_mib, "snakemake+aws-batch"),
        Row("images", "rule image, no requirements (MiB) vs Snakemake image", plain.size_mib,
            reference.size_mib, "snakemake+aws-batch"),
    ]  # fmt: skip


def _remove(client, tag: str) -> None:
    with contextlib.suppress(ImageNotFound):
        client.images.remove(tag, noprune=False)
