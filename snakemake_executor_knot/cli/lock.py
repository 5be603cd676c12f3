"""``knot lock``: write knot.lock next to the Snakefile from this machine's environment.

It loads the workflow with Snakemake's API without running it, finds each rule's
requirements as a run does, takes their full closure and PyPI's hashes, and records the
base image's digest from the local Docker engine. It creates nothing on AWS. The work is
in ``lock.load``; this module parses the flags and prints the summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.settings import KnotConfig
from ..config.sources import add_setting_flags
from ..lock.load import find_snakefile, write_workflow_lock


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
        "--wrapper-prefix",
        metavar="URL",
        help="where the workflow's wrappers come from, as Snakemake's --wrapper-prefix "
        "(default: Snakemake's, the snakemake-wrappers repository)",
    )
    # As a run reads them: a flag here, SNAKEMAKE_KNOT_*, or a profile's knot-* key. The
    # instance types decide the platform: linux/arm64 for Graviton, else linux/amd64.
    add_setting_flags(parser, ("base_image", "instance_types"))
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, config: KnotConfig) -> int:
    snakefile = find_snakefile(args.snakefile)
    path, lock = write_workflow_lock(snakefile, config, args.wrapper_prefix)
    base = lock.base_image
    hashed = sum(all(p.hashes for p in r.requirements) for r in lock.rules.values())
    print(
        f"knot lock: wrote {path}: {len(lock.rules)} rule(s) ({hashed} with hashes), "
        f"{lock.platform}, base {base.name}@{base.digest[:19]}."
    )
    return 0
