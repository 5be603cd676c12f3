# The script of a script: rule; Snakemake (and knot's runtime) provide `snakemake`.
with open(snakemake.output[0], "w") as handle:  # noqa: F821
    handle.write("written by a script\n")
