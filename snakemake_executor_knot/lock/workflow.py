"""knot.lock for a workflow: which rules it covers, what each rule's requirements come from,
writing it from this machine's environment (``knot lock``, or a refresh), and the locked
requirement lines a rule's image installs.

``format`` holds the lock's content and file, ``closure`` the pinning; this module ties them
to Snakemake's rules, and ``drift`` decides whether a run follows, refreshes or refuses a
lock. Docker (the base image's digest) is passed in as plain values, so nothing here
touches the engine or AWS.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .. import __version__
from ..errors import RuleError
from ..image.apt import parse_apt
from ..image.base import BaseImage
from ..image.dockerfile import host_boto3_version
from ..image.requirements import find_requirements, import_names, parse_packages
from ..jobs.values import encode_value, required_modules
from ..names import short_hash
from ..rules.languages import notebook_imports
from ..rules.source import RuleSource, check_supported, rule_source, script_image_path
from .closure import closure, index_hashes
from .format import LOCK_FILE, Lock, Pinned, RuleLock, requirements_lines

log = logging.getLogger("knot")

RUNTIME_REQUIREMENT = "boto3"  # what knot's runtime imports; locked with every rule
FETCH_WORKERS = 8


@dataclass(frozen=True)
class RuleBasis:
    """What a rule's requirements are found from: its third-party imports and its
    ``knot_packages``. Its hash is the lock's ``source``: it does not depend on what is
    installed, so a lock checks the same on every machine, and editing a run block without
    touching its imports leaves the lock as it is."""

    rule: str
    code: str | None
    imports: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    values: tuple[str, ...] = ()  # modules the rule's params or the config need to load
    apt: tuple[str, ...] = ()  # knot_apt as written in the rule

    @property
    def source(self) -> str:
        basis = {"imports": list(self.imports), "packages": list(self.packages)}
        if self.values:  # only when present, so older locks keep their sources
            basis["values"] = list(self.values)
        if self.apt:
            basis["apt"] = list(self.apt)
        return short_hash(basis)

    def describe(self) -> str:
        imports = ", ".join(self.imports) or "nothing outside the standard library"
        packages = f"; knot_packages: {', '.join(self.packages)}" if self.packages else ""
        values = f"; its values need {', '.join(self.values)}" if self.values else ""
        return f"'{self.rule}' now imports {imports}{packages}{values}"

    def requirement_code(self) -> str:
        """The code whose imports are pinned: the rule's own, plus an import of each module
        its values need (a numpy param needs numpy even if the code never imports it)."""
        return (self.code or "") + "".join(f"import {name}\n" for name in self.values)


def python_source(source: RuleSource) -> str | None:
    """The Python code whose imports the image needs: the rule module (run rules, and
    shell rules whose command uses Snakefile globals), or the script."""
    if source.module_source:
        return source.module_source
    if source.kind == "script":
        assert source.script_path is not None  # rule_source sets it for every script rule
        text = source.files[script_image_path(source.script_path)].decode()
        if source.script_path.endswith(".ipynb"):
            return notebook_imports(text)
        if not source.script_path.endswith(".py"):  # R, Bash, ...: no Python imports
            return None
        return text
    return None


def rule_basis(
    source: RuleSource, packages: object = None, values: Iterable[str] = (), script: bool = True
) -> RuleBasis:
    """``packages`` is the rule's ``knot_packages`` value, if any; ``values`` the modules
    its params and the config need to load. Without ``script``, the rule's Python script
    runs with its conda environment's Python, and its imports are no concern of knot's."""
    code = python_source(source) if script else None
    imports = import_names(code, rule=source.rule) if code else []
    extra = parse_packages(packages, rule=source.rule) if packages else []
    return RuleBasis(source.rule, code, tuple(imports), tuple(sorted(extra)), tuple(sorted(values)))


def lock_path(workflow) -> Path:
    """knot.lock sits next to the main Snakefile."""
    return Path(workflow.main_snakefile).resolve().parent / LOCK_FILE


def locked_rules(
    workflow,
    packages: Callable[[object], object],
    values: Callable[[object], Iterable[str]],
    in_conda_python: Callable[[object], bool] = lambda rule: False,
) -> dict[str, RuleBasis]:
    """Every rule knot would build an image for, by name: not local, not naming its own
    image (``knot_image``), of a kind knot runs. ``packages(rule)`` gives its
    ``knot_packages``, ``values(rule)`` the modules its values need, ``in_conda_python(rule)``
    whether its script runs with its conda environment's Python. A rule knot cannot run
    is left out here; running it is the error."""
    bases = {}
    for rule in workflow.rules:
        if _is_local(workflow, rule) or _static(rule, "knot_image"):
            continue
        try:
            check_supported(rule)
        except RuleError:
            continue
        source = rule_source(workflow, rule)
        basis = rule_basis(source, packages(rule), values(rule), not in_conda_python(rule))
        apt = _static(rule, "knot_apt")
        bases[rule.name] = replace(basis, apt=parse_apt(apt, rule.name)) if apt else basis
    return bases


def _is_local(workflow, rule) -> bool:
    # Workflow.is_local answers True for every rule when no executor plugin is loaded (as in
    # 'knot lock'), so ask what it asks of the rule itself: a rule in a group runs remotely
    # whatever it is (a rule with no action is then a member of the group's image).
    local = rule.name in workflow._localrules or rule.norun or rule.is_template_engine
    return local and _group(workflow, rule) is None


def _group(workflow, rule) -> str | None:
    # Rule.group answers None too without an executor plugin: read what it would answer.
    settings = getattr(workflow, "group_settings", None)
    overwritten = getattr(settings, "overwrite_groups", None) or {}
    return overwritten.get(rule.name) or getattr(rule, "_group", None)


def static_packages(rule) -> object:
    """``knot_packages`` as written in the rule (``knot lock`` has no jobs to evaluate)."""
    return _static(rule, "knot_packages")


def static_values(config: dict) -> Callable[[object], set[str]]:
    """The modules a rule's params as written (functions are left out: ``knot lock`` has
    no jobs to call them with) and the workflow's config need to load."""

    def modules(rule) -> set[str]:
        written = [value for value in rule.params if not callable(value)]
        return required_modules(
            [
                encode_value(written, rule=rule.name, what="param"),
                encode_value(config, rule=rule.name, what="config"),
            ]
        )

    return modules


def _static(rule, name: str) -> object:
    value = rule.resources.get(name) if rule.resources else None
    # Snakemake 9 wraps each resource of a rule in a Resource; its plain value is .value.
    value = getattr(value, "value", value) if not isinstance(value, str) else value
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------- writing


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class HashCache:
    """PyPI hashes per (name, version), fetched once however many rules share a pin; the
    pins PyPI gave none for are kept to be reported once."""

    fetch: Callable[[str], bytes] | None = None
    found: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    def pin_all(self, pins: list[Pinned]) -> list[Pinned]:
        """``pins`` with their hashes; the releases not seen yet are fetched in parallel
        (one request each, some of them large: numpy's lists hundreds of files)."""
        todo = sorted({(pin.name, pin.version) for pin in pins} - set(self.found))
        with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
            fetched = pool.map(self._hashes, todo)
            self.found.update(zip(todo, fetched, strict=True))
        return [Pinned(pin.name, pin.version, self.found[(pin.name, pin.version)]) for pin in pins]

    def _hashes(self, key: tuple[str, str]) -> tuple[str, ...]:
        """The hashes of one (name, version) pin."""
        name, version = key
        return tuple(index_hashes(name, version, fetch=self.fetch))

    def warn_missing(self) -> None:
        missing = sorted(f"{name}=={version}" for (name, version), h in self.found.items() if not h)
        if missing:
            log.warning(
                "knot.lock: the package index gave no hashes for %s; rules that need them "
                "install their pins without --require-hashes.",
                ", ".join(missing),
            )


def top_level(basis: RuleBasis) -> list[str]:
    """The rule's pinned requirements, plus boto3 for knot's runtime."""
    found = list(basis.packages)
    code = basis.requirement_code()
    if code:
        found = find_requirements(code, rule=basis.rule, extra=basis.packages)
    names = {canonicalize_name(Requirement(spec).name) for spec in found}
    if RUNTIME_REQUIREMENT not in names:
        found.append(f"{RUNTIME_REQUIREMENT}=={host_boto3_version()}")
    return found


AptResolver = Callable[[tuple[str, ...], str], tuple[str, ...]]


def lock_rule(
    basis: RuleBasis,
    *,
    python: str,
    platform: str,
    hashes: HashCache,
    apt: AptResolver | None = None,
) -> RuleLock:
    """``apt(packages, rule)`` pins knot_apt's closure; without one (a run refreshing its
    lock) the packages stay unpinned until 'knot lock' runs."""
    pins = closure(top_level(basis), python=python, platform=platform, rule=basis.rule)
    apt_pins = apt(basis.apt, basis.rule) if apt and basis.apt else ()
    return RuleLock(tuple(hashes.pin_all(pins)), basis.source, apt_pins)


def build_lock(
    bases: Mapping[str, RuleBasis],
    *,
    platform: str,
    base_image: BaseImage,
    hashes: HashCache,
    keep: Mapping[str, RuleLock] | None = None,
    apt: AptResolver | None = None,
) -> Lock:
    """A lock of ``bases`` from this machine's environment. Entries of ``keep`` whose
    source still matches are kept as they are: a refresh re-pins only what changed."""
    keep = keep or {}
    python = python_version()
    rules = {}
    for name, basis in bases.items():
        old = keep.get(name)
        if old is not None and old.source == basis.source:
            rules[name] = old
        else:
            rules[name] = lock_rule(basis, python=python, platform=platform, hashes=hashes, apt=apt)
    hashes.warn_missing()
    return Lock(__version__, platform, python, base_image, rules)


# ---------------------------------------------------------------- a rule's image


def locked_lines(lock: Lock, rule: str) -> tuple[tuple[str, ...], bool]:
    """The requirement lines of ``rule``'s image and whether they carry hashes."""
    text, hashed = requirements_lines(lock.rules[rule].requirements)
    return tuple(text.splitlines()), hashed


__all__ = [
    "HashCache",
    "RuleBasis",
    "build_lock",
    "lock_path",
    "locked_lines",
    "locked_rules",
    "python_source",
    "python_version",
    "rule_basis",
    "static_packages",
    "static_values",
]
