"""The workflow's own code that a rule imports: its local modules and packages.

Snakemake puts the folder of every Snakefile (the main one and each ``include:``) at the
front of ``sys.path``, and a script's own folder on the script's path, so a Snakefile's
``from lib.stats import summarize`` imports ``lib/`` next to it. knot finds those imports
without running any of the user's code: every import statement of the rule's code is looked
up with importlib's path finder in those folders only, and each module found there is parsed
(``ast``) for its own imports, transitively. Only modules found this way are shipped, never
the rest of the working directory.

Each folder searched (a *root*) has a place in the image under RULE_DIR that keeps the
module paths as they are on the host; the runtime puts those places on ``sys.path``.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

from ..errors import RuleError


@dataclass(frozen=True)
class Root:
    """A folder imports are resolved in, and where the image holds its modules."""

    host: Path
    image: str


@dataclass
class LocalCode:
    """The local modules one rule's code imports."""

    files: dict[str, bytes] = field(default_factory=dict)  # image path -> bytes
    sources: dict[str, str] = field(default_factory=dict)  # image path -> Python text
    names: set[str] = field(default_factory=set)  # top-level import names that are local
    roots: list[str] = field(default_factory=list)  # image folders to put on sys.path


def find_local_code(code: str, roots: Sequence[Root], rule: str) -> LocalCode:
    """The local modules ``code`` (the rule module or a script) imports, transitively."""
    finder = _Finder(roots, rule)
    finder.scan(_parse(code, rule, "its code"), package=None)
    found = finder.found
    if found.files:
        found.roots = list(dict.fromkeys(root.image for root in finder.roots))
    return found


class _Finder:
    def __init__(self, roots: Sequence[Root], rule: str) -> None:
        self.roots = [root for root in roots if root.host.is_dir()]
        self.rule = rule
        self.found = LocalCode()
        self._done: set[str] = set()

    def scan(self, tree: ast.AST, package: str | None) -> None:
        for dotted in _imported_names(tree, package):
            self.resolve(dotted)

    def resolve(self, dotted: str) -> None:
        """Ship every module along ``a.b.c`` that is local (``a/__init__.py``, ...)."""
        parts = dotted.split(".")
        top = parts[0]
        spec = PathFinder.find_spec(top, [str(root.host) for root in self.roots])
        for index in range(1, len(parts) + 1):
            if spec is None:
                return
            self._add(".".join(parts[:index]), spec)
            if index < len(parts) and spec.submodule_search_locations is not None:
                locations = list(spec.submodule_search_locations)
                spec = PathFinder.find_spec(".".join(parts[: index + 1]), locations)
            else:
                spec = None

    def _add(self, name: str, spec: ModuleSpec) -> None:
        if name in self._done or not spec.has_location or not spec.origin:
            return  # a namespace package (a plain folder) holds no code of its own
        self._done.add(name)
        path = Path(spec.origin)
        image_path = self._image_path(name, path)
        data = path.read_bytes()
        self.found.files[image_path] = data
        self.found.names.add(name.partition(".")[0])
        if path.suffix == ".py":
            text = data.decode("utf-8", errors="replace")
            self.found.sources[image_path] = text
            is_package = path.name == "__init__.py"
            package = name if is_package else name.rpartition(".")[0]
            self.scan(_parse(text, self.rule, f"its local module {path}"), package or None)

    def _image_path(self, name: str, path: Path) -> str:
        for root in self.roots:
            if path.resolve().is_relative_to(root.host.resolve()):
                relative = path.resolve().relative_to(root.host.resolve()).as_posix()
                return posixpath.normpath(posixpath.join(root.image, relative))
        raise RuleError(
            f"Rule '{self.rule}' imports the local module '{name}' from {path}, which is "
            "outside the workflow's folders (a symbolic link leading out of them?). Move it "
            "under the Snakefile's folder."
        )


def _parse(text: str, rule: str, what: str) -> ast.AST:
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise RuleError(f"Rule '{rule}': {what} is not valid Python ({exc}).") from exc


def _imported_names(tree: ast.AST, package: str | None) -> Iterator[str]:
    """Dotted names an import may load, imports inside functions included: ``from a
    import b`` may load the submodule ``a.b``, so both are candidates."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base is None:
                continue
            if base:
                yield base
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}" if base else alias.name


def _absolute(node: ast.ImportFrom, package: str | None) -> str | None:
    """The absolute module of a from-import; None for a relative one with no package."""
    if not node.level:
        return node.module or ""
    if package is None:
        return None
    parts = package.split(".")
    if node.level - 1 >= len(parts):
        return None  # beyond the top-level package: Python refuses it too
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base
