# A Python script of a conda rule: its shell commands find the environment's tools.
from snakemake.shell import shell

with open(snakemake.input[0]) as handle:  # noqa: F821
    lines = len(handle.read().splitlines())
shell(f"knot-hello counted {lines} lines > {{snakemake.output[0]}}")
