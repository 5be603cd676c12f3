"""A group job's one image (pure): the members' shared base and platform, the union of their
requirements, and each member rule's files in a folder of its own (see ``jobs/group.py``)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace

from ..jobs.group import group_error
from ..runtime.contract import KNOT_ROOT, MEMBERS_DIR
from .dockerfile import ImageSpec

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==")


@dataclass(frozen=True)
class Member:
    """What the group check needs of a member rule's plan."""

    rule: str
    image: ImageSpec | None  # None: the rule names a prebuilt image (knot_image)
    given_image: str | None = None


def group_image(name: str, groupid: str, parts: list[Member]) -> ImageSpec:
    """One image for the group: the members' shared base and platform, the union of their
    requirements, and each member's files under ``MEMBERS_DIR/<rule>/``. A RuleError when
    they cannot share one image, before anything is created."""
    rules = ", ".join(sorted(p.rule for p in parts))
    given = [p for p in parts if p.image is None]
    if given:
        raise group_error(
            groupid,
            rules,
            f"rule '{given[0].rule}' names its own prebuilt image (knot_image="
            f"{given[0].given_image}), which holds no other rule's code",
            "drop knot_image from the grouped rules, or take that rule out of the group",
        )
    specs = [p.image for p in parts if p.image is not None]  # all of them: given is empty
    _same(
        groupid,
        rules,
        specs,
        "base_image",
        "container: image",
        "give every rule of the group the same container: image (or none)",
    )
    _same(groupid, rules, specs, "platform", "platform", "use one platform")
    _same(groupid, rules, specs, "apt", "knot_apt list", "give them one knot_apt (or none)")
    _same(
        groupid,
        rules,
        specs,
        "conda",
        "conda environment",
        "give every rule of the group the same conda: file (or none)",
    )
    _same(groupid, rules, specs, "locked", "knot.lock coverage", "run 'knot lock' again")
    requirements = _merged_requirements(groupid, rules, specs)
    files = {_relocated(spec.rule, path): data for spec in specs for path, data in spec.files}
    first = specs[0]
    return replace(
        first,
        rule=name,
        requirements=requirements,
        files=tuple(files.items()),
        require_hashes=all(s.require_hashes for s in specs),
    )


def _relocated(rule: str, path: str) -> str:
    return posixpath.join(MEMBERS_DIR, rule, posixpath.relpath(path, KNOT_ROOT))


def _same(groupid: str, rules: str, specs: list[ImageSpec], field: str, what: str, fix: str):
    values: dict[object, str] = {}
    for spec in specs:
        values.setdefault(getattr(spec, field), spec.rule)
    if len(values) > 1:
        shown = "; ".join(f"rule '{rule}': {value or 'none'}" for value, rule in values.items())
        raise group_error(groupid, rules, f"its rules ask for different {what}s ({shown})", fix)


def _merged_requirements(groupid: str, rules: str, specs: list[ImageSpec]) -> tuple[str, ...]:
    pins: dict[str, tuple[str, str]] = {}
    for spec in specs:
        for line in spec.requirements:
            found = _PIN.match(line)
            if not found:
                continue
            name = found.group(1).lower().replace("_", "-")
            seen = pins.setdefault(name, (line.strip(), spec.rule))
            if seen[0].split(";")[0] != line.strip().split(";")[0]:
                raise group_error(
                    groupid,
                    rules,
                    f"rule '{seen[1]}' needs {seen[0]} but rule '{spec.rule}' needs {line.strip()}",
                    "pin one version for both (knot_packages), or split the group",
                )
    return tuple(sorted({line for spec in specs for line in spec.requirements}))
