"""The import statements the Snakefiles make, and import lines for other shipped objects.

A global a ``run:`` block uses is shipped as the Snakefile's own import statement when one
binds it to the same object; a module or an importable function or class gets an import line
written by knot.
"""

from __future__ import annotations

import ast
import re
import sys
import types
from typing import NamedTuple

from .text import Snakefiles, statement_extent

_IMPORT_LINE = re.compile(r"^\s*(import\s+\w|from\s+[\w.]+\s+import\b)")
MISSING = object()  # what a name binds when this process does not have it


class SnakefileImport(NamedTuple):
    """One name bound by an import statement of the Snakefiles."""

    bound: str  # the name the statement binds
    target: object  # what it binds it to (in this process)
    text: str
    order: tuple[int, int]


def snakefile_imports(files: Snakefiles) -> list[SnakefileImport]:
    """Every import the Snakefiles make, one per bound name, with what it binds."""
    found = []
    for index, filename in enumerate(files.filenames()):
        lines = files.lines(filename)
        for number, line in enumerate(lines, 1):
            if _IMPORT_LINE.match(line):
                for node in _parse_import(lines, number):
                    found.extend(_bindings(node, (index, number)))
    return found


def _parse_import(lines: list[str], number: int) -> list[ast.Import | ast.ImportFrom]:
    candidates = [lines[number - 1].strip()]
    try:
        end, _ = statement_extent(lines, number)
        candidates.append("".join(lines[number - 1 : end]).lstrip())
    except SyntaxError:  # inside a docstring, say: not an import after all
        pass
    for text in candidates:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        return [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return []


def _bindings(node: ast.Import | ast.ImportFrom, order: tuple[int, int]) -> list[SnakefileImport]:
    found = []
    for alias in node.names:
        if isinstance(node, ast.Import):
            # `import a.b` binds a; `import a.b as c` binds c to a.b
            bound = alias.asname or alias.name.partition(".")[0]
            target = sys.modules.get(alias.name if alias.asname else bound, MISSING)
            text = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
        elif node.level == 0 and node.module and alias.name != "*":
            bound = alias.asname or alias.name
            target = _from_target(node.module, alias.name)
            text = f"from {node.module} import {alias.name}"
            text += f" as {alias.asname}" if alias.asname else ""
        else:  # relative and star imports cannot be reproduced outside the workflow
            continue
        found.append(SnakefileImport(bound, target, text, order))
    return found


def _from_target(module_name: str, attribute: str) -> object:
    module = sys.modules.get(module_name)
    found = getattr(module, attribute, MISSING) if module is not None else MISSING
    if found is MISSING:
        found = sys.modules.get(f"{module_name}.{attribute}", MISSING)
    return found


def module_import(name: str, module: types.ModuleType) -> str:
    """The import line that binds ``name`` to ``module``."""
    full = module.__name__
    parent, _, last = full.rpartition(".")
    if full == name:
        return f"import {full}"
    if parent and last == name:
        return f"from {parent} import {last}"
    return f"import {full} as {name}"


def object_import(name: str, value: object) -> str | None:
    """``from module import name`` for a function or class of an installed module."""
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or "." in qualname:
        return None
    module = sys.modules.get(module_name)
    if module is None or module_name == "__main__" or getattr(module, qualname, None) is not value:
        return None
    return f"from {module_name} import {qualname}" + ("" if qualname == name else f" as {name}")
