"""The generated rule module (``knot_rule.py``) of ``run:`` rules and of shell rules whose
command names the Snakefile's globals."""

from __future__ import annotations

import dis
import re
import string
import types
from typing import TYPE_CHECKING

from ..errors import RuleError
from ..runtime.contract import RUN_ARGUMENTS, RUN_FUNCTION
from .shipping import Shipper, global_names
from .text import Snakefiles, run_block

if TYPE_CHECKING:
    from snakemake.workflow import Workflow

_JOB_NAMES = frozenset(RUN_ARGUMENTS) | {"config"}
_LOCAL_LOADS = frozenset({"LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE"})


# ---- shell rules


def shell_module(workflow: Workflow, rule, public: frozenset[str] = frozenset()) -> str | None:
    """Snakemake also formats a shell command with the Snakefile's globals ("{SCALE}"); the
    globals a command names travel in a rule module without ``knot_run``."""
    names = [name for name in _format_names(rule.shellcmd) if name not in _JOB_NAMES]
    if not names or rule.run_func is None:
        return None
    files = Snakefiles(workflow, rule.name)
    shipper = Shipper(rule.name, rule.run_func.__globals__, files, public)
    for name in names:
        shipper.need(name)
    return shipper.module_text(None) if shipper.has_content() else None


def _format_names(command: str) -> list[str]:
    try:
        fields = [parsed[1] for parsed in string.Formatter().parse(command)]
    except ValueError:  # not a format string: Snakemake could not format it either
        return []
    names: dict[str, None] = {}
    for field_name in fields:
        found = re.match(r"[A-Za-z_]\w*", field_name or "")
        if found:
            names.setdefault(found.group())
    return list(names)


# ---- run rules


def run_module(workflow: Workflow, rule, public: frozenset[str] = frozenset()) -> str:
    """The text of the generated ``knot_rule.py`` of a ``run:`` rule."""
    func = rule.run_func
    files = Snakefiles(workflow, rule.name)
    body = run_block(files, func.__code__)
    _check_run_arguments(rule.name, func.__code__)
    shipper = Shipper(rule.name, func.__globals__, files, public)
    shipper.scan(func.__code__)
    for name in global_names(func.__code__):
        shipper.need(name)
    return shipper.module_text(f"def {RUN_FUNCTION}({', '.join(RUN_ARGUMENTS)}):\n{body}")


def _check_run_arguments(rule: str, code: types.CodeType) -> None:
    """Snakemake passes run functions more arguments than the runtime provides (conda_env,
    basedir, bench_record, ...); a block reading one would fail only in the container."""
    extra = set(code.co_varnames[: code.co_argcount]) - set(RUN_ARGUMENTS)
    for instruction in dis.get_instructions(code):
        if instruction.opname in _LOCAL_LOADS and instruction.argval in extra:
            raise RuleError(
                f"Rule '{rule}': its run: block uses '{instruction.argval}', which Snakemake "
                "passes to run blocks but knot does not provide in the container (it provides "
                f"{', '.join(RUN_ARGUMENTS)} and config). Pass the value through params:."
            )
