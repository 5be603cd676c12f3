"""A wrapper written for knot's tests in the style of the published snakemake-wrappers,
whose environment.yaml has python: it runs with the environment's own python."""

__author__ = "knot tests"
__license__ = "MIT"

import os
import sys

import knot_pymod
from snakemake.shell import shell

log = snakemake.log_fmt_shell(stdout=False, stderr=True)  # noqa: F821
where = os.path.relpath(sys.executable, os.environ["CONDA_PREFIX"])
greeting = knot_pymod.GREETING

shell(
    "(echo {where:q} {greeting:q} && knot-greet {snakemake.params.extra} "
    "{snakemake.wildcards.name}) > {snakemake.output[0]} {log}"
)
