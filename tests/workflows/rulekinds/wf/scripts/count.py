# Snakemake gives a script its `snakemake` object.
source, target = snakemake.input[0], snakemake.output[0]  # noqa: F821
with open(source) as reading:
    lines = reading.read().splitlines()
with open(target, "w") as writing:
    writing.write(f"{len(lines)} lines\n")
