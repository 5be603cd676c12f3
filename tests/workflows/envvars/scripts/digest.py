"""A script: the envvar is in its environment, as for run: and shell: rules."""

import hashlib
import os


def main(snakemake) -> None:
    value = os.environ["KNOT_TEST_TOKEN"]
    with open(snakemake.output[0], "w") as fh:
        fh.write(f"{len(value)} {hashlib.sha256(value.encode()).hexdigest()}\n")


main(snakemake)  # noqa: F821 - Snakemake injects `snakemake` into scripts
