"""A rule's kind and source: the public face of knot's rule handling.

Script rules carry their script into the image; ``run:`` rules, and shell rules whose command
names the Snakefile's globals, carry a generated rule module (``module``), built from the
Snakefiles' original text (``text``) and what the code uses from their globals
(``shipping``). Rules knot cannot run are a ``RuleError`` raised before any AWS call.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING

from snakemake.sourcecache import LocalSourceFile, infer_source_file

from ..errors import RuleError
from ..runtime.contract import NORUN_KIND, RULE_DIR, RULE_MODULE_PATH, SYS_PATH_FILE
from .languages import script_language
from .localcode import LocalCode, Root, find_local_code
from .module import run_module, shell_module
from .wrapper import wrapper_script, wrapper_script_path

if TYPE_CHECKING:
    from snakemake.workflow import Workflow

# Stands for a ".." part of an included Snakefile's folder in the image (workflow_roots).
UP_PART = ".knot-up"


@dataclass(frozen=True)
class RuleSource:
    """What one rule runs, and the files its image holds for it (path in image -> bytes)."""

    rule: str
    kind: str  # "run" | "shell" | "script" | "norun"
    files: dict[str, bytes] = field(default_factory=dict, hash=False)
    shell_command: str | None = None
    script_path: str | None = None
    container: str | None = None
    module_source: str | None = None
    # The workflow's own modules the code imports (image path -> text), and their
    # top-level import names, which are no requirements.
    local_sources: dict[str, str] = field(default_factory=dict, hash=False)
    local_names: frozenset[str] = frozenset()


# ---- kinds and unsupported rules


def rule_kind(rule) -> str:
    """``run``, ``shell``, ``script`` or ``norun``; any other kind is a RuleError."""
    if getattr(rule, "norun", False):
        # No action: Snakemake runs it on the host (Workflow.is_local), unless it is in a
        # group, where it is a member that runs nothing; only its touch() outputs are made.
        return NORUN_KIND
    if rule.shellcmd is not None:
        return "shell"
    if rule.script is not None or rule.notebook is not None or rule.wrapper is not None:
        return "script"  # a notebook and a wrapper run as scripts
    if rule.is_run:
        return "run"
    check_supported(rule)
    raise RuleError(
        f"Rule '{rule.name}' has no run:, shell: or script: that knot knows how to run. "
        f"Add it to 'localrules: {rule.name}', and please report this as a knot bug."
    )


def check_supported(rule) -> None:
    """Raise a RuleError, with the way out, for rules knot cannot run in its containers."""
    if rule.template_engine is not None and rule.group is not None:
        # Snakemake renders templates itself, on this machine, unless the rule is in a
        # group: only then does it reach knot.
        raise RuleError(
            f"Rule '{rule.name}' uses 'template_engine:' and is in group '{rule.group}'. "
            "Snakemake renders a template on this machine, and knot does not render it in "
            "a group's container. Take the rule out of the group."
        )
    if getattr(rule, "cwl", None) is not None:  # knot's images hold no CWL runner
        raise RuleError(
            f"Rule '{rule.name}' uses 'cwl:', which knot does not support. {_way_out(rule.name)}."
        )
    if rule.script is not None:
        _check_script(rule.name, str(rule.script))


def _way_out(rule: str) -> str:
    return (
        f"Run it on this machine with 'localrules: {rule}', or rewrite it as a run:, shell: "
        "or Python script: rule (a 'container:' image can supply other tools)"
    )


def _check_script(rule: str, script: str) -> None:
    script_language(rule, script)  # a RuleError for a kind of script knot does not run


# ---- the entry point


def rule_source(workflow: Workflow, rule, public: frozenset[str] = frozenset()) -> RuleSource:
    """The kind and source of ``rule``. ``workflow`` is Snakemake's Workflow object (in an
    executor, ``job.rule.workflow``); ``public`` names globals declared not secret."""
    check_supported(rule)
    kind = rule_kind(rule)
    common = {"rule": rule.name, "kind": kind, "container": _container(rule)}
    if kind == NORUN_KIND:
        return RuleSource(**common)
    if rule.wrapper is not None:
        path = wrapper_script_path(rule)
        files = {script_image_path(path): wrapper_script(workflow, rule)}
        return RuleSource(**common, files=files, script_path=path)
    if kind == "script":
        path = str(rule.script or rule.notebook)
        files = _script_files(workflow, rule, path)
        if rule.notebook is not None or script_language(rule.name, path) != "python":
            return RuleSource(**common, files=files, script_path=path)
        roots = [*_script_root(rule, path), *workflow_roots(workflow)]
        local = find_local_code(files[script_image_path(path)].decode(), roots, rule.name)
        return RuleSource(**common, **_with_local(files, local), script_path=path)
    build = run_module if kind == "run" else shell_module
    module = build(workflow, rule, public)
    files = {RULE_MODULE_PATH: module.encode()} if module else {}
    local = find_local_code(module, workflow_roots(workflow), rule.name) if module else LocalCode()
    command = rule.shellcmd if kind == "shell" else None
    return RuleSource(
        **common, **_with_local(files, local), shell_command=command, module_source=module
    )


def _container(rule) -> str | None:
    image = rule.container_img
    return image if isinstance(image, str) and image else None


# ---- the workflow's own modules


def workflow_roots(workflow: Workflow) -> list[Root]:
    """The folders Snakemake puts on sys.path, in its order: each Snakefile's folder at the
    front as it is read, so the last included comes first."""
    base = Path(workflow.basedir).resolve()
    roots: dict[Path, str] = {}
    for filename in reversed([*workflow.linemaps]):
        folder = Path(filename).parent.resolve()
        if Path(filename).is_file():
            roots.setdefault(folder, root_image_path(folder, base))
    roots.setdefault(base, RULE_DIR)
    return [Root(host, image) for host, image in roots.items()]


def root_image_path(folder: Path, base: Path) -> str:
    """Where the image holds a Snakefile's folder: at its path relative to the main
    Snakefile's, each '..' (an include: from a sibling folder) spelled UP_PART so that
    the place stays under RULE_DIR and sibling folders keep their layout."""
    parts = [
        UP_PART if part == ".." else part for part in Path(os.path.relpath(folder, base)).parts
    ]
    return posixpath.normpath(posixpath.join(RULE_DIR, *parts))


def _script_root(rule, path: str) -> list[Root]:
    """A script imports modules next to it (Snakemake adds its folder to the script's path)."""
    source_file = infer_source_file(path, rule.basedir)
    if not isinstance(source_file, LocalSourceFile):
        return []
    host = Path(source_file.get_path_or_uri(secret_free=True)).parent
    return [Root(host, posixpath.dirname(script_image_path(path)))]


def _with_local(files: dict[str, bytes], local: LocalCode) -> dict:
    """The rule's files plus its local modules and, when there are any, the list of image
    folders the runtime puts on sys.path."""
    if not local.files:
        return {"files": files}
    paths = [posixpath.relpath(root, RULE_DIR) for root in local.roots]
    listing = "".join(f"{path}\n" for path in paths).encode()
    return {
        "files": {**files, **local.files, f"{RULE_DIR}/{SYS_PATH_FILE}": listing},
        "local_sources": local.sources,
        "local_names": frozenset(local.names),
    }


# ---- script rules


def script_image_path(path: str) -> str:
    """Where the image holds a rule's script; the runtime joins RULE_DIR and the spec's
    path (``script_relative``) the same way."""
    return f"{RULE_DIR}/{script_relative(path)}"


def script_relative(path: str) -> str:
    """A script's path under RULE_DIR: as the rule names it, relative to the folder of the
    Snakefile that defines the rule, each '..' spelled UP_PART (``workflow/rules/x.smk``
    naming ``../scripts/fit.py``, the usual layout), so that it stays under RULE_DIR."""
    parts = PurePosixPath(posixpath.normpath(path.lstrip("/"))).parts
    return posixpath.join(*(UP_PART if part == ".." else part for part in parts))


def _script_files(workflow: Workflow, rule, path: str) -> dict[str, bytes]:
    if "{" in path:
        raise RuleError(
            f"Rule '{rule.name}' computes its script path from wildcards or params ({path}); "
            "knot bakes the script into the rule's image, so the path must be fixed."
        )
    if PurePath(path).is_absolute():
        raise RuleError(
            f"Rule '{rule.name}': the script path '{path}' is absolute. Refer to the script "
            "relative to the Snakefile that defines the rule (e.g. scripts/fit.py)."
        )
    return {script_image_path(path): _read_script(workflow, rule, path)}


def _read_script(workflow: Workflow, rule, path: str) -> bytes:
    # Snakemake resolves a script against the directory of the Snakefile defining the rule;
    # remote Snakefiles (github(...)) are read through its source cache.
    source_file = infer_source_file(path, rule.basedir)
    try:
        if isinstance(source_file, LocalSourceFile):
            return Path(source_file.get_path_or_uri(secret_free=True)).read_bytes()
        with workflow.sourcecache.open(source_file) as handle:
            return handle.read().encode()
    except OSError as exc:
        raise RuleError(
            f"Rule '{rule.name}': cannot read its script '{path}' ({exc}). The path is "
            "relative to the directory of the Snakefile that defines the rule."
        ) from exc
