"""A wrapper written for knot's tests in the style of the published snakemake-wrappers:
it imports shell from snakemake.shell and reads the snakemake object."""

__author__ = "knot tests"
__license__ = "MIT"

from snakemake.shell import shell

log = snakemake.log_fmt_shell(stdout=False, stderr=True)  # noqa: F821
extra = snakemake.params.get("extra", "")  # noqa: F821

shell(
    "(knot-greet {extra} {snakemake.wildcards.name} && echo threads={snakemake.threads})"
    " > {snakemake.output[0]} {log}"
)
