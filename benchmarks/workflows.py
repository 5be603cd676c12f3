"""The benchmark workflows, written as plain Snakefiles, and their outputs seeded in S3.

moto's Batch does no work without Docker, so every output is put in S3 before the run and
Snakemake runs with ``--forceall``: it finds each output after the job "succeeds".
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# A rule-level knot_image: knot reads it only from the Snakefile (--set-resources values
# are expressions, which knot's plan does not evaluate). The aws-batch plugin ignores it.
NOOP_IMAGE = "knot-bench/noop:1"

_FANOUT = """\
N = {n}
# knot runs each rule in this image instead of building one (moto runs no containers).
IMAGE = "{image}"

rule all:
    input:
        expand("out/{{i}}.txt", i=range(N)),

rule work:
    output:
        "out/{{i}}.txt",
    resources:
        knot_image=IMAGE,
    run:
        with open(output[0], "w") as fh:
            fh.write(wildcards.i + "\\n")
"""

_PIPELINE = """\
N = {n}
# knot runs each rule in this image instead of building one (moto runs no containers).
IMAGE = "{image}"

rule all:
    input:
        expand("c/{{i}}.txt", i=range(N)),

rule a:
    output:
        "a/{{i}}.txt",
    resources:
        knot_image=IMAGE,
    run:
        with open(output[0], "w") as fh:
            fh.write(wildcards.i + "\\n")

rule b:
    input:
        "a/{{i}}.txt",
    output:
        "b/{{i}}.txt",
    resources:
        knot_image=IMAGE,
    run:
        with open(input[0]) as src, open(output[0], "w") as dst:
            dst.write(src.read() * 2)

rule c:
    input:
        "b/{{i}}.txt",
    output:
        "c/{{i}}.txt",
    resources:
        knot_image=IMAGE,
    run:
        with open(input[0]) as src, open(output[0], "w") as dst:
            dst.write(src.read().upper())
"""


@dataclass(frozen=True)
class Workflow:
    name: str  # also the folder and the storage prefix's last part
    jobs: int  # Batch jobs one run submits
    rules: tuple[str, ...]  # the rules that become Batch jobs
    snakefile: str
    outputs: tuple[str, ...]  # every output path, relative to the storage prefix

    def write(self, root: Path) -> Path:
        folder = root / self.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Snakefile").write_text(self.snakefile)
        return folder


def fanout(n: int) -> Workflow:
    """One rule, ``n`` independent jobs."""
    outputs = tuple(f"out/{i}.txt" for i in range(n))
    return Workflow(f"fanout-{n}", n, ("work",), _FANOUT.format(n=n, image=NOOP_IMAGE), outputs)


def pipeline(n: int) -> Workflow:
    """Three rules chained a -> b -> c, ``n`` jobs each (``3 n`` jobs in all)."""
    outputs = tuple(f"{stage}/{i}.txt" for stage in "abc" for i in range(n))
    return Workflow(
        f"pipeline-{3 * n}",
        3 * n,
        ("a", "b", "c"),
        _PIPELINE.format(n=n, image=NOOP_IMAGE),
        outputs,
    )


def seed_outputs(s3, bucket: str, prefix: str, workflow: Workflow) -> None:
    """Put every output of ``workflow`` under ``s3://bucket/prefix/``."""

    def put(path: str) -> None:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{path}", Body=path.encode())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, workflow.outputs))
