"""Tabulate the per-run statistics of the heat example (a Snakemake `script:` rule)."""

import json

COLUMNS = ["size", "hot", "sweeps", "centre", "mean", "residual", "converged"]


def main(snakemake) -> None:
    rows = []
    for path in snakemake.input:
        with open(path) as fh:
            rows.append(json.load(fh))
    # Sort by value, not by file name, so the table does not depend on input order.
    rows.sort(key=lambda row: (row["size"], row["hot"]))
    with open(snakemake.output[0], "w") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            fh.write("\t".join(str(row[col]).lower() for col in COLUMNS) + "\n")


main(snakemake)  # noqa: F821 - Snakemake injects `snakemake` into scripts
