"""Compare the outputs of two runs of a workflow, byte for byte.

Usage: python compare_outputs.py RUN_A RUN_B [--only results logs]

Digests every file under the given top-level folders of each run directory and reports files
that differ or exist on one side only. Benchmarks (timings), Snakemake's own state and its
hidden directory markers are left out: they differ between runs by design.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

DEFAULT_FOLDERS = ("results", "logs")
# .snakemake_timestamp: the marker Snakemake touches inside directory() outputs.
IGNORED_NAMES = frozenset({".snakemake_timestamp"})


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digests(root: Path, folders: tuple[str, ...] = DEFAULT_FOLDERS) -> dict[str, str]:
    """sha256 of every file under root/<folder>, keyed by its path relative to root."""
    digests: dict[str, str] = {}
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.name not in IGNORED_NAMES:
                digests[path.relative_to(root).as_posix()] = file_digest(path)
    return digests


def compare_trees(
    run_a: Path, run_b: Path, folders: tuple[str, ...] = DEFAULT_FOLDERS
) -> list[str]:
    """One line per difference between the two runs; empty when they are identical."""
    a, b = tree_digests(run_a, folders), tree_digests(run_b, folders)
    problems = [f"only in {run_a}: {p}" for p in sorted(a.keys() - b.keys())]
    problems += [f"only in {run_b}: {p}" for p in sorted(b.keys() - a.keys())]
    problems += [f"differs: {p}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--only", nargs="+", default=list(DEFAULT_FOLDERS))
    args = parser.parse_args(argv)
    folders = tuple(args.only)
    problems = compare_trees(args.run_a, args.run_b, folders)
    for line in problems:
        print(line)
    count = len(tree_digests(args.run_a, folders))
    print(f"{count} files compared, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
