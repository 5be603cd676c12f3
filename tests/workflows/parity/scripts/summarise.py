"""A `script:` rule: reads everything through the `snakemake` object Snakemake injects."""

import json
import sys
from pathlib import Path


def read_counts(path: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(path) as fh:
        for line in fh:
            word, n, _ = line.rstrip("\n").split("\t")
            counts[word] = int(n)
    return counts


def main(snakemake) -> None:
    # Snakemake puts only the script's own folder on its path; the workflow's lib/ is one up.
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
    from lib.textstats import length_profile

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
        "lengths": length_profile(frequent),
    }
    with open(snakemake.output[0], "w") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    with open(snakemake.log[0], "w") as fh:
        fh.write(f"{len(frequent)} words seen at least {snakemake.params.min_count} times\n")


main(snakemake)  # noqa: F821 - Snakemake injects `snakemake` into scripts
