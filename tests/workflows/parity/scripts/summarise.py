"""A `script:` rule: reads everything through the `snakemake` object Snakemake injects."""

import json


def read_counts(path: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(path) as fh:
        for line in fh:
            word, n, _ = line.rstrip("\n").split("\t")
            counts[word] = int(n)
    return counts


def main(snakemake) -> None:
    counts = read_counts(snakemake.input.counts)
    upper = read_counts(snakemake.input["upper"])
    frequent = sorted(w for w, n in counts.items() if n >= snakemake.params.min_count)
    summary = {
        "sample": snakemake.wildcards.sample,
        "rule": snakemake.rule,
        "distinct": len(counts),
        "distinct_upper": len(upper),
        "frequent": frequent,
        "note": snakemake.params.note,
        "greeting": snakemake.config["greeting"],
        "threads": snakemake.threads,
        "tokens": snakemake.resources.tokens,
    }
    with open(snakemake.output[0], "w") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    with open(snakemake.log[0], "w") as fh:
        fh.write(f"{len(frequent)} words seen at least {snakemake.params.min_count} times\n")


main(snakemake)  # noqa: F821 - Snakemake injects `snakemake` into scripts
