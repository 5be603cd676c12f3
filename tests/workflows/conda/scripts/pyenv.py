# A Python script of a rule whose environment has its own python: it runs there, imports
# what only the environment has (knot_pymod from conda, six from its pip: section), and
# still gets the snakemake object and snakemake.shell's shell.
import os
import sys

import knot_pymod
import six
from snakemake.shell import shell

sm = snakemake  # noqa: F821
try:
    import boto3  # noqa: F401 (knot's own venv has it; the environment does not)

    venv = "knot's venv visible"
except ImportError:
    venv = "knot's venv absent"
lines = [
    os.path.relpath(sys.executable, os.environ["CONDA_PREFIX"]),
    knot_pymod.GREETING,
    f"six {six.__version__}",
    venv,
    os.environ["KNOT_GREETING"],
    f"{sm.rule} {sm.wildcards.name} {sm.params.greeting} threads={sm.threads}",
    # Base names: in storage mode the paths lie under .snakemake/storage.
    " -> ".join(os.path.basename(path) for path in (sm.input[0], sm.output[0], sm.log[0])),
]
with open(sm.output[0], "w") as handle:
    handle.write("\n".join(lines) + "\n")
shell("knot-hello {sm.wildcards.name} >> {sm.output[0]} 2> {sm.log[0]}")
