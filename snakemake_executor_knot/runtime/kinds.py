"""Running the rule's own code, for each kind of rule: ``run``, ``shell`` or ``script``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping, MutableMapping
from types import ModuleType
from typing import Any

from . import conda, envpython, envvars
from .contract import (
    NORUN_KIND,
    RULE_DIR,
    RULE_DIR_ENV,
    RULE_MODULE,
    RUN_FUNCTION,
    SYS_PATH_FILE,
)
from .namespace import Namespace
from .preamble import run_foreign_script
from .script import ScriptContext, checked_script_path, run_script
from .shell import shell

# shell()'s own keyword arguments; a global of the same name must not be passed as one.
_SHELL_KEYWORDS = frozenset({"read", "iterable", "bench_record", "additional_envvars"})


def import_rule_module() -> ModuleType | None:
    """The generated rule module, or None when the image has none (shell rules)."""
    try:
        return importlib.import_module(RULE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != RULE_MODULE:  # the module exists but one of its imports does not
            raise
        return None


def run_block(ns: Namespace) -> None:
    module = importlib.import_module(RULE_MODULE)
    # A module global, so a config change needs no new image. Set through vars(): the
    # module's other names are unknown to a type checker too.
    vars(module)["config"] = ns.config
    getattr(module, RUN_FUNCTION)(**ns.run_arguments())


def run_shell(ns: Namespace, shell_spec: Mapping[str, Any]) -> None:
    """Format the raw command with the job's names (and the rule module's globals, if the
    image has one) and run it."""
    if shell_spec.get("executable"):
        shell.executable(shell_spec["executable"])
    module = import_rule_module()
    variables = {}
    if module:
        vars(module)["config"] = ns.config
        variables = {k: v for k, v in vars(module).items() if not k.startswith("__")}
    variables.update(ns.variables())
    for keyword in _SHELL_KEYWORDS & variables.keys():
        del variables[keyword]
    shell(shell_spec["command"], **variables)


def local_code_paths(env: Mapping[str, str]) -> list[str]:
    """The image folders holding the workflow's own modules, as Snakemake has them on
    sys.path on the host (each Snakefile's folder); [] when the rule imports none."""
    base = env.get(RULE_DIR_ENV, RULE_DIR)
    try:
        with open(os.path.join(base, SYS_PATH_FILE), encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except FileNotFoundError:
        return []
    # Written by knot on the host; still, a line may only name a folder under RULE_DIR.
    folders = [os.path.normpath(os.path.join(base, line)) for line in lines if line]
    return [f for f in folders if f == base or f.startswith(base.rstrip("/") + "/")]


def apply_shell_wrap(wrap: Mapping[str, Any]) -> None:
    """The Snakefile's shell.prefix() and shell.suffix(), already formatted on the host."""
    if isinstance(wrap.get("prefix"), str):
        shell._prefix = wrap["prefix"]
    if isinstance(wrap.get("suffix"), str):
        shell._suffix = wrap["suffix"]


def activate_conda(env: MutableMapping[str, str]) -> None:
    """Run the rule's commands inside the image's conda environment, if it has one."""
    prefix = conda.conda_prefix(env)
    if prefix:
        conda.activate(env, prefix)
        shell._activation = conda.activation_scripts(prefix)


def run_kind(spec: Mapping[str, Any], ns: Namespace, env: Mapping[str, str]) -> None:
    kind = spec["kind"]
    if kind == NORUN_KIND:  # a rule with no action: nothing to run (touch() follows)
        return
    # Before the rule module is imported or a script runs, as Snakemake does on the host.
    sys.path[:0] = [p for p in local_code_paths(env) if p not in sys.path]
    # The workflow's envvars: in os.environ, so run blocks, scripts and shell() see them.
    envvars.apply(spec)
    apply_shell_wrap(spec.get("shell_wrap") or {})
    if kind != "run":  # run blocks keep knot's Python, as Snakemake keeps its own
        activate_conda(os.environ)
    if kind == "run":
        run_block(ns)
    elif kind == "shell":
        run_shell(ns, spec.get("shell") or {})
    elif (spec.get("script") or {}).get("language", "python") != "python":
        run_foreign_script(ns, spec["script"])
    else:
        run_python_script(ns, (spec.get("script") or {})["path"], env)


def run_python_script(ns: Namespace, relative: str, env: Mapping[str, str]) -> None:
    """A Python script (or wrapper): with the rule's conda environment's own python when
    the image has one that can run it, as Snakemake runs it, else with knot's."""
    prefix = conda.conda_prefix(env)
    python = envpython.env_python(prefix) if prefix else None
    if prefix and python is None:
        print(envpython.fallback_notice(prefix), file=sys.stderr, flush=True)
    if python is None:
        run_script(ns, relative, env)
        return
    path = checked_script_path(relative, env)
    context = ScriptContext(ns, os.path.dirname(path))
    envpython.run_in_env(context, python, path, local_code_paths(env))
