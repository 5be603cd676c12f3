"""A script importing a helper next to it, and lib/ from the workflow's folder."""

import sys
from pathlib import Path

from helper import heading


def main(snakemake) -> None:
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the workflow's folder
    from lib.util import clamp

    with open(snakemake.input[0]) as fh:
        text = fh.read()
    with open(snakemake.output[0], "w") as fh:
        fh.write(heading(text) + str(clamp(9, 0, 1)) + "\n")


main(snakemake)  # noqa: F821 (Snakemake's global)
