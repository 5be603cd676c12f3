import sys

from fitlib import scale  # a sibling module: sys.path[0] is this script's folder

with open(sys.argv[1]) as handle:
    words = handle.read().split()
print(f"{len(words) * scale()} from {len(words)} words")
