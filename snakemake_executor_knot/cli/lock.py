"""``knot lock``: write knot.lock next to the Snakefile from this machine's environment.

It loads the workflow with Snakemake's API without running it, finds each rule's
requirements as a run does, takes their full closure and PyPI's hashes, and records the
base image's digest from the local Docker engine. It creates nothing on AWS.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from pathlib import Path

from ..config.settings import KnotConfig
from ..errors import ConfigError
from ..lock.format import platform_for, write_lock
from ..lock.workflow import (
    HashCache,
    build_lock,
    lock_path,
    locked_rules,
    static_packages,
    static_values,
)
from ..run.plans import resolve_base_image


def register(commands) -> None:
    """Add the ``lock`` subcommand to an argparse subparsers object."""
    parser = commands.add_parser(
        "lock",
        help="pin every rule's requirements in knot.lock",
        description="Write knot.lock next to the Snakefile: for each rule the full closure "
        "of the distributions its imports need, at the versions installed here, with "
        "PyPI's hashes; the base image by digest; the target platform; knot's version.",
    )
    parser.add_argument(
        "--snakefile", type=Path, help="the Snakefile (default: ./Snakefile or workflow/Snakefile)"
    )
    parser.add_argument(
        "--base-image", help="base image of rule images (as --knot-base-image; default as a run)"
    )
    parser.add_argument(
        "--instance-types",
        default="optimal",
        help="the compute environments' instance types (as --knot-instance-types); they "
        "decide the platform: linux/arm64 for Graviton, else linux/amd64",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, config: KnotConfig) -> int:
    snakefile = find_snakefile(args.snakefile)
    types = tuple(t.strip() for t in args.instance_types.split(",") if t.strip())
    config = dataclasses.replace(
        config, base_image=args.base_image or None, instance_types=types or ("optimal",)
    )
    workflow = load_workflow(snakefile)
    bases = locked_rules(workflow, static_packages, static_values(workflow.config))
    platform = platform_for(config.instance_types)
    base = local_base(resolve_base_image(config))
    lock = build_lock(bases, platform=platform, base_image=base, hashes=HashCache())
    path = lock_path(workflow)
    write_lock(path, lock)
    hashed = sum(all(p.hashes for p in r.requirements) for r in lock.rules.values())
    print(
        f"knot lock: wrote {path}: {len(lock.rules)} rule(s) ({hashed} with hashes), "
        f"{platform}, base {base.name}@{base.digest[:19]}."
    )
    return 0


def find_snakefile(given: Path | None) -> Path:
    candidates = [given] if given else [Path("Snakefile"), Path("workflow", "Snakefile")]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise ConfigError(
        f"No Snakefile at {' or '.join(map(str, candidates))}. Run 'knot lock' in the "
        "workflow's folder, or name the file with --snakefile PATH."
    )


def load_workflow(snakefile: Path):
    """Snakemake's Workflow for ``snakefile``, parsed and checked but not run. Snakemake
    changes into the working directory; the caller's is restored."""
    # Snakemake's API takes about a second to import: only 'knot lock' needs it.
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            workflow_api = api.workflow(
                ResourceSettings(), snakefile=snakefile, workdir=snakefile.parent
            )
            # The API offers no public way to the parsed Workflow short of running it.
            return workflow_api._workflow
    finally:
        with contextlib.suppress(OSError):
            os.chdir(cwd)


def local_base(name: str):
    # The docker SDK is slow to import, and only 'knot lock' needs it here.
    from ..image.builder import docker_client, local_base_image

    return local_base_image(docker_client(), name)
