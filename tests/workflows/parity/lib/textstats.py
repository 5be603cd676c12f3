"""Word statistics, used by the `index` run block (imported by the Snakefile) and by
scripts/summarise.py (which puts the workflow's folder on sys.path itself)."""

import statistics

from .fmt import fixed


def length_profile(words):
    """Mean and median word length, as fixed-width text."""
    lengths = [len(w) for w in words] or [0]
    return f"mean={fixed(statistics.mean(lengths))} median={fixed(statistics.median(lengths))}"
