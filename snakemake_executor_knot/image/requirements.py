"""A rule's Python requirements: the imports of its generated module (found by pipreqs),
mapped to distributions and pinned to the versions installed here, so the container runs
what the user ran locally.

Local metadata (``importlib.metadata``) is exact for what is installed; pipreqs's mapping
file only names what is not (``sklearn`` -> scikit-learn), for messages and for matching
``knot_packages``, whose entries the user pins themselves.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import logging
import re
import sys
import tempfile
from collections.abc import Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import RuleError
from ..runtime.contract import RULE_MODULE, RUNTIME_PACKAGE

# The runtime package is copied into every image; boto3 comes with the runtime layer and
# is pinned only when the user's code imports it.
_NOT_REQUIREMENTS = frozenset({RUNTIME_PACKAGE, "__future__"})
_OPERATOR = re.compile(r"\s*(===|==|!=|<=|>=|~=|<|>)\s*")
# Common scientific imports missing from pipreqs 0.5's mapping file.
_MAPPING_GAPS = {"skimage": "scikit-image", "cv2": "opencv-python", "Bio": "biopython"}


def find_requirements(
    module_source: str,
    *,
    rule: str,
    extra: Sequence[str] = (),
    local_modules: Mapping[str, str] | None = None,
    local_names: Collection[str] = (),
) -> list[str]:
    """Pinned requirements (``name==version``) of a rule module and of the workflow's own
    modules it imports (``local_modules``: where -> text; their top-level ``local_names``
    are no requirements), plus ``extra``: a sorted, de-duplicated list. Unresolvable
    imports not covered by ``extra`` are a RuleError naming the module that makes them."""
    wanted = [_requirement(spec, rule) for spec in extra]
    covered = {canonicalize_name(r.name) for r in wanted}
    # pipreqs reads `from .util import x` as an import of `util`: a local module's relative
    # imports are its own package's, so only its absolute imports are looked at.
    # where -> source; None: the rule module itself
    sources: dict[str | None, str] = {None: module_source}
    sources.update(
        (where, _absolute_imports(text)) for where, text in (local_modules or {}).items()
    )
    every = "\n".join(sources.values())
    pins: dict[str, str] = {}
    for where, source in sources.items():
        missing: list[str] = []
        for name in sorted(_third_party_imports(source, rule) - set(local_names)):
            distributions = _distributions(name, every)
            if not distributions and not _covered(name, covered):
                missing.append(name)
            for distribution in distributions:
                key = canonicalize_name(distribution)
                if key not in covered:
                    pins[key] = f"{distribution}=={metadata.version(distribution)}"
        if missing:
            raise _unresolved(rule, missing, where)
    result = set(pins.values()) | {str(requirement) for requirement in wanted}
    return sorted(result, key=lambda spec: (canonicalize_name(_name(spec)), spec))


def import_names(module_source: str, *, rule: str) -> list[str]:
    """The module's third-party top-level import names, sorted. Unlike the pins, they do not
    depend on what is installed here, so knot.lock can tell from them whether a rule's
    requirements changed on any machine."""
    return sorted(_third_party_imports(module_source, rule))


def _absolute_imports(source: str) -> str:
    """The absolute imports of a module, one ``import a.b`` a line."""
    return "".join(f"import {name}\n" for name in sorted(_dotted_imports(source)))


def _covered(name: str, covered: AbstractSet[str]) -> bool:
    return bool({canonicalize_name(pypi_name(name)), canonicalize_name(name)} & covered)


def parse_packages(value: object, *, rule: str) -> list[str]:
    """The entries of a rule's ``knot_packages`` resource: requirement specifiers separated
    by commas or whitespace ("scikit-learn==1.5.2, pandas>=2,<3 tqdm"), each validated."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise RuleError(
            f"Rule '{rule}': resources: knot_packages must be a string of requirement "
            f'specifiers, like knot_packages="scikit-learn==1.5.2, pandas>=2"; got {value!r}.'
        )
    specs = _split_packages(value)
    for spec in specs:
        _requirement(spec, rule)
    return specs


def _split_packages(value: str) -> list[str]:
    # Glue operators to their versions, so that a comma separates requirements only when
    # a name follows it ("pandas>=2,<3" is one requirement; "numpy, scipy" two).
    text = re.sub(r"\s*,\s*", ",", _OPERATOR.sub(r"\1", value))
    specs, current, depth = [], "", 0
    for index, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        continues = char == "," and re.match(r"\s*[<>=!~]", text[index + 1 :])
        if (char == "," or char.isspace()) and depth == 0 and not continues:
            specs.append(current)
            current = ""
        else:
            current += char
    specs.append(current)
    return [spec for spec in specs if spec]


def _requirement(spec: str, rule: str) -> Requirement:
    try:
        return Requirement(spec)
    except InvalidRequirement as exc:
        raise RuleError(
            f"Rule '{rule}': '{spec}' in resources: knot_packages is not a valid requirement "
            f'({exc}). Write specifiers like knot_packages="scikit-learn==1.5.2, pandas>=2".'
        ) from exc


def _name(spec: str) -> str:
    return Requirement(spec).name


def _keep_root_logger_unconfigured() -> None:
    """pipreqs logs through the module-level ``logging.debug``, which runs
    ``logging.basicConfig()`` when the root logger has no handler; Snakemake's messages
    would then be printed twice. A NullHandler on the root prevents that."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def _third_party_imports(module_source: str, rule: str) -> set[str]:
    """Top-level import names of the module that are not the standard library."""
    pipreqs = _pipreqs()
    _keep_root_logger_unconfigured()
    with tempfile.TemporaryDirectory(prefix="knot-requirements-") as folder:
        Path(folder, f"{RULE_MODULE}.py").write_text(module_source, encoding="utf-8")
        try:
            found = pipreqs.get_all_imports(folder)
        except SyntaxError as exc:
            raise RuleError(
                f"Rule '{rule}': its generated module is not valid Python ({exc}). "
                "Please report this as a knot bug."
            ) from exc
    return {
        name
        for name in found
        if name not in sys.stdlib_module_names and name not in _NOT_REQUIREMENTS
    }


@functools.lru_cache(maxsize=1)
def _installed() -> Mapping[str, list[str]]:
    """Import name -> distributions installed here (scans every installed package once)."""
    return metadata.packages_distributions()


def _distributions(name: str, module_source: str) -> list[str]:
    """The installed distributions that provide import ``name``. A namespace package
    (``google``) has several; keep those that hold the submodules actually imported."""
    found = list(dict.fromkeys(_installed().get(name, [])))
    if len(found) < 2:
        return found
    paths = [p.replace(".", "/") for p in _dotted_imports(module_source) if p.startswith(name)]
    narrowed = [d for d in found if any(_provides(d, path) for path in paths)]
    return narrowed or found


def _dotted_imports(module_source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module_source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _provides(distribution: str, path: str) -> bool:
    files = metadata.files(distribution) or []
    return any(str(f).startswith((f"{path}/", f"{path}.")) for f in files)


def pypi_name(import_name: str) -> str:
    """pipreqs's guess of the distribution behind an import name (``sklearn`` ->
    ``scikit-learn``, ``yaml`` -> ``PyYAML``); the name itself when it has none."""
    if import_name in _MAPPING_GAPS:
        return _MAPPING_GAPS[import_name]
    # pipreqs's mapping file writes scikit_learn; pip spells it scikit-learn.
    return re.sub(r"[-_.]+", "-", _pipreqs().get_pkg_names([import_name])[0])


def _pipreqs():
    # pipreqs takes about 0.25 s to import, and Snakemake imports every installed executor
    # plugin at start-up: load it only when a rule's requirements are needed.
    from pipreqs import pipreqs

    return pipreqs


def _unresolved(rule: str, missing: list[str], where: str | None = None) -> RuleError:
    listed = ", ".join(
        name if pypi_name(name) == name else f"{name} (distribution {pypi_name(name)})"
        for name in missing
    )
    # where: a local module of the workflow that the rule imports, by its path
    importer = (
        f"Rule '{rule}' imports the workflow's module {where}, which imports"
        if where
        else f"Rule '{rule}' imports"
    )
    return RuleError(
        f"{importer} {listed}, which is not installed on this machine, so knot "
        "cannot pin its version for the rule's image. Install it here (pip install ...) so "
        "knot pins the same version, or name it in the rule's resources, e.g. "
        f'knot_packages="{pypi_name(missing[0])}==<version>".'
    )


__all__ = ["find_requirements", "import_names", "parse_packages", "pypi_name"]
