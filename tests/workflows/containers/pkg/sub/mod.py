"""Run as `python -m pkg.sub.mod IN OUT`: relative imports work as they do locally."""

import sys

from ..helpers import shout

with open(sys.argv[1]) as source, open(sys.argv[2], "w") as target:
    for line in source:
        target.write(shout(line.strip()) + "\n")
