"""The names a rule's code sees: ``input``, ``output``, ``params``, ``wildcards``, ..."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .contract import RUN_ARGUMENTS
from .namedlist import Namedlist, Wildcards, from_section, paths_of


@dataclass
class Namespace:
    input: Namedlist
    output: Namedlist
    params: Namedlist
    wildcards: Wildcards
    threads: int
    resources: Namedlist
    log: Namedlist
    config: dict[str, Any]
    rule: str
    jobid: Any

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Namespace:
        return cls(
            input=paths_of(spec.get("input")),
            output=paths_of(spec.get("output")),
            params=from_section(spec.get("params")),
            wildcards=from_section(spec.get("wildcards"), Wildcards),
            threads=int(spec.get("threads") or 1),
            resources=from_section(spec.get("resources")),
            log=paths_of(spec.get("log")),
            config=spec.get("config") or {},
            rule=str(spec["rule"]),
            jobid=spec["jobid"],
        )

    def run_arguments(self) -> dict[str, Any]:
        """The arguments of the generated ``knot_run(...)`` (config is a module global)."""
        return {name: getattr(self, name) for name in RUN_ARGUMENTS}

    def variables(self) -> dict[str, Any]:
        """Everything, for formatting a shell rule's command."""
        return self.run_arguments() | {"config": self.config}
