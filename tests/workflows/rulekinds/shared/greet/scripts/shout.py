# Snakemake gives a script its `snakemake` object.
source, target = snakemake.input[0], snakemake.output[0]  # noqa: F821
with open(source) as reading, open(target, "w") as writing:
    writing.write(reading.read().upper())
