"""What a Snakefile's code may use without importing it, for the generated rule module.

``knot_rule.py`` starts with ``from knot_runtime.prelude import *``. ``config`` is not here:
the runtime sets it as a global of ``knot_rule`` from the job spec before the rule runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .patterns import expand, glob_wildcards, multiext
from .shell import shell

__all__ = [
    "Path",
    "expand",
    "glob_wildcards",
    "multiext",
    "os",
    "re",
    "shell",
    "subprocess",
    "sys",
]
