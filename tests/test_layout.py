"""The package's shape: no import cycles, the command line on the top floor, imports at
module level except the few that defer a heavy library, and a runtime that needs neither
Snakemake nor the host's modules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = "snakemake_executor_knot"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# (importing module, imported module) pairs allowed inside functions, each deferring a
# library that is slow to import or optional; the code says why at each one.
DEFERRED = {
    (f"{PACKAGE}.run.prepare", f"{PACKAGE}.image.builder"),  # the docker SDK
    (f"{PACKAGE}.image.requirements", "pipreqs"),
    (f"{PACKAGE}.image.conda", "rattler"),  # native code, loaded only for a conda: rule
    (f"{PACKAGE}.lock.load", f"{PACKAGE}.image.builder"),  # the docker SDK
    (f"{PACKAGE}.lock.load", "snakemake.api"),  # only 'knot lock' loads a workflow
    (f"{PACKAGE}.lock.load", "snakemake.settings.types"),
    # only 'knot plan' builds a DAG, with Snakemake's parser, API and plugin registries
    (f"{PACKAGE}.forecast.dag", "snakemake.api"),
    (f"{PACKAGE}.forecast.dag", "snakemake.cli"),
    (f"{PACKAGE}.forecast.dag", "snakemake.settings.types"),
    (f"{PACKAGE}.forecast.dag", "snakemake_interface_executor_plugins.registry"),
    (f"{PACKAGE}.forecast.dag", "snakemake_interface_storage_plugins.registry"),
    (f"{PACKAGE}.report.render", "matplotlib"),  # only pictures need it
    (f"{PACKAGE}.emulator.server", "moto.server"),  # the optional 'emulator' extra
    # moto, likewise: the serve process applies the patches and hands them its settings.
    (f"{PACKAGE}.emulator.server", f"{PACKAGE}.emulator.patches.install"),
    (f"{PACKAGE}.emulator.server", f"{PACKAGE}.emulator.patches.fidelity"),
    (f"{PACKAGE}.emulator.server", f"{PACKAGE}.emulator.patches.batch"),  # its label
    (f"{PACKAGE}.emulator.server", f"{PACKAGE}.emulator.patches.ecr"),  # the push hook
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def resolve(node: ast.ImportFrom | ast.Import, importer: str, is_package: bool) -> list[str]:
    """The absolute names an import statement loads (for ``from X import a``, both X.a,
    in case ``a`` is a module, and X)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = importer if is_package else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def imports(path: Path, name: str) -> list[tuple[str, bool]]:
    """(imported name, whether the import is inside a function) for every import."""
    tree = ast.parse(path.read_text())
    inner = {
        id(sub)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for sub in ast.walk(fn)
    }
    is_package = path.name == "__init__.py"
    return [
        (target, id(node) in inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target in resolve(node, name, is_package)
    ]


def import_graph() -> dict[str, set[str]]:
    """Edges between the package's own modules, parent packages included (importing a.b.c
    runs a/__init__ and a/b/__init__ first)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, _ in imports(path, name):
            while target and target != name:
                if target in known:
                    graph[name].add(target)
                target = target.rpartition(".")[0]
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in graph:
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) in (["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"])
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_imports_the_command_line():
    cli = f"{PACKAGE}.cli"
    importers = [
        name
        for name, targets in import_graph().items()
        if not name.startswith(cli) and any(t.startswith(cli) for t in targets)
    ]
    assert importers == []


def test_imports_inside_functions_only_defer_heavy_libraries():
    found = {
        (name, target)
        for name, path in modules().items()
        for target, inside in imports(path, name)
        if inside
    }
    # `from X import a` yields X and X.a; keep the pairs that name a real import.
    unexpected = {
        (name, target)
        for name, target in found
        if not any(name == d[0] and target.startswith(d[1]) for d in DEFERRED)
        and not any(name == d[0] and d[1].startswith(target) for d in DEFERRED)
    }
    assert unexpected == set()


@pytest.mark.parametrize("name", sorted(n for n in modules() if n.startswith(f"{PACKAGE}.runtime")))
def test_the_runtime_imports_only_the_standard_library_and_boto3(name):
    allowed = set(sys.stdlib_module_names) | {"boto3", "botocore", "s3transfer"}
    for target, _ in imports(modules()[name], name):
        top = target.split(".")[0]
        if top == PACKAGE:
            assert target.startswith(f"{PACKAGE}.runtime"), (name, target)
        else:
            assert top in allowed, (name, target)
