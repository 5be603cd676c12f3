"""``python -m snakemake_executor_knot.cli``: the ``knot`` command."""

import sys

from . import main

sys.exit(main())
