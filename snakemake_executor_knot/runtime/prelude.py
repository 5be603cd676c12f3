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

from .contract import RULE_DIR, RULE_DIR_ENV
from .patterns import expand, glob_wildcards, multiext
from .shell import shell


class ImageWorkflow:
    """Stands in for Snakemake's ``workflow`` in a rule module, where the host found that
    the code reads only ``workflow.basedir``: the image folder holding the workflow's
    files, at their paths relative to the Snakefile (RULE_DIR). Not in ``__all__``: the
    rule module imports it by name only when the code uses it."""

    @property
    def basedir(self) -> str:
        return os.environ.get(RULE_DIR_ENV, RULE_DIR)


workflow = ImageWorkflow()

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
