"""The names a rule's code sees: ``input``, ``output``, ``params``, ``wildcards``, ..."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .contract import RUN_ARGUMENTS
from .namedlist import Namedlist, Wildcards, from_section, paths_of
from .values import decode_value


@dataclass
class Namespace:
    input: Namedlist
    output: Namedlist
    params: Namedlist
    wildcards: Wildcards
    threads: int
    resources: Namedlist
    log: Namedlist
    config: Any  # the workflow's mapping, or a module's own config (a list, say)
    rule: str
    jobid: Any

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Namespace:
        return cls(
            input=paths_of(spec.get("input")),
            output=paths_of(spec.get("output")),
            params=from_section(decoded(spec.get("params"))),
            wildcards=from_section(decoded(spec.get("wildcards")), Wildcards),
            # 0 stays 0, as Snakemake formats a rule's ``threads: 0``.
            threads=1 if spec.get("threads") is None else int(spec["threads"]),
            resources=from_section(decoded(spec.get("resources"))),
            log=paths_of(spec.get("log")),
            config=decode_value(spec.get("config") or {}),
            rule=str(spec["rule"]),
            jobid=spec["jobid"],
        )

    def run_arguments(self) -> dict[str, Any]:
        """The arguments of the generated ``knot_run(...)`` (config is a module global)."""
        return {name: getattr(self, name) for name in RUN_ARGUMENTS}

    def variables(self) -> dict[str, Any]:
        """Everything, for formatting a shell rule's command."""
        return self.run_arguments() | {"config": self.config}


def decoded(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """A named-list section of the spec with its items decoded (values.py): params,
    wildcards and resources may hold any Python value."""
    if not section:
        return section
    return {**section, "items": [decode_value(item) for item in section.get("items") or []]}
