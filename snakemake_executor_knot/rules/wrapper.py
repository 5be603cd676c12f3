"""``wrapper:`` rules: the wrapper's script, fetched on the host from ``--wrapper-prefix``
(Snakemake's default otherwise) at the version the directive names, ships in the rule's
image and runs as a script rule. Its environment.yaml is the rule's conda: environment
(Snakemake sets it when it reads the rule), built as any other."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import snakemake.wrapper
from snakemake.wrapper import get_script

from ..errors import RuleError

if TYPE_CHECKING:
    from snakemake.workflow import Workflow

# Snakemake's default --wrapper-prefix (named PREFIX before 9.x's DEFAULT_WRAPPER_PREFIX).
DEFAULT_WRAPPER_PREFIX: str = getattr(
    snakemake.wrapper, "DEFAULT_WRAPPER_PREFIX", getattr(snakemake.wrapper, "PREFIX", "")
)

# The wrapper's script lies at WRAPPER_DIR/<hash of the directive>/wrapper.py under the
# image's rule folder: a directive may be a URL, which is no path.
WRAPPER_DIR = ".knot-wrapper"


def wrapper_script_path(rule) -> str:
    """The script's path as the job spec names it (relative to the image's rule folder)."""
    digest = hashlib.sha256(str(rule.wrapper).encode()).hexdigest()[:16]
    return f"{WRAPPER_DIR}/{digest}/wrapper.py"


def wrapper_script(workflow: Workflow, rule) -> bytes:
    """The wrapper's Python script, fetched now; a RuleError naming the rule, the wrapper
    and the prefix when it cannot be fetched or is not Python."""
    prefix = workflow.workflow_settings.wrapper_prefix
    found = get_script(rule.wrapper, workflow.sourcecache, prefix=prefix)
    if isinstance(found, dict):
        tried = "; ".join(f"{name}: {message}" for name, message in found.items())
        raise RuleError(
            f"Rule '{rule.name}': cannot fetch its wrapper '{rule.wrapper}' from "
            f"{prefix or DEFAULT_WRAPPER_PREFIX} ({tried}). Check the wrapper's name and "
            "version, and --wrapper-prefix."
        )
    name = found.get_filename()
    if not name.endswith("wrapper.py"):
        raise RuleError(
            f"Rule '{rule.name}': its wrapper '{rule.wrapper}' is {name}; knot runs Python "
            "wrappers (wrapper.py). Run the rule here with 'localrules: "
            f"{rule.name}'."
        )
    with workflow.sourcecache.open(found) as handle:
        data = handle.read()
    return data.encode() if isinstance(data, str) else data
