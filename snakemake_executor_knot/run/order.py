"""The rules of a run in DAG order, for the report: a rule comes after every rule whose
outputs its jobs read (pure; reads only the jobs' public input and output lists)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..jobs.group import job_label, jobs_of

if TYPE_CHECKING:
    from ..jobs.group import AnyJob


def dag_order(jobs: Iterable[AnyJob]) -> list[str]:
    """Each rule (a group: its label) once, by the depth of its shallowest job (a job that
    reads no other job's output has depth 0), then by name."""
    jobs = list(jobs)
    maker = {
        str(f): index for index, job in enumerate(jobs) for m in jobs_of(job) for f in m.output
    }
    needs = [
        {maker[str(f)] for m in jobs_of(job) for f in m.input if str(f) in maker} - {index}
        for index, job in enumerate(jobs)
    ]
    depths = _depths(needs)
    shallowest: dict[str, int] = {}
    for index, job in enumerate(jobs):
        label = job_label(job)
        shallowest[label] = min(shallowest.get(label, depths[index]), depths[index])
    return sorted(shallowest, key=lambda rule: (shallowest[rule], rule))


def _depths(needs: list[set[int]]) -> list[int]:
    """The longest path to each node from a node with no needs, without recursion (a DAG
    may be thousands of jobs deep); a cycle, which a DAG cannot have, is cut."""
    depth: dict[int, int] = {}
    for root in range(len(needs)):
        stack = [root]
        on_path: set[int] = set()
        while stack:
            node = stack[-1]
            if node in depth:
                stack.pop()
                continue
            on_path.add(node)
            pending = [n for n in needs[node] if n not in depth and n not in on_path]
            if pending:
                stack.extend(pending)
                continue
            depth[node] = 1 + max((depth.get(n, -1) for n in needs[node]), default=-1)
            on_path.discard(node)
            stack.pop()
    return [depth[i] for i in range(len(needs))]
