"""How long a DAG of jobs takes (pure): its critical path, and the whole schedule when the
compute class's ``maxvcpus`` and Snakemake's ``--jobs`` limit how many jobs run at once."""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    """One job: its id, the ids it waits for, how long the run waits for it, the vCPUs it
    holds and the compute class whose ``maxvcpus`` it counts against."""

    id: int
    after: tuple[int, ...]
    seconds: float
    vcpus: float = 1.0
    compute_class: str = "default"
    # Snakemake's scheduler starts, of the jobs ready together, those with more input bytes
    # first (after priority); the schedule does too.
    input_bytes: float = 0.0


def critical_path(nodes: Sequence[Node]) -> tuple[float, list[int]]:
    """The longest chain of waits through the DAG, and its job ids in order."""
    finish: dict[int, float] = {}
    before: dict[int, int | None] = {}
    for node in topological(nodes):
        parents = [i for i in node.after if i in finish]
        first = max(parents, key=lambda i: finish[i], default=None)
        finish[node.id] = (finish[first] if first is not None else 0.0) + node.seconds
        before[node.id] = first
    if not finish:
        return 0.0, []
    last = max(reversed(list(finish)), key=lambda i: finish[i])  # the last to end
    length, path = finish[last], []
    end: int | None = last
    while end is not None:
        path.append(end)
        end = before[end]
    return length, path[::-1]


def makespan(
    nodes: Sequence[Node],
    max_vcpus: Mapping[str, float],
    max_jobs: int | None = None,
    larger_first: bool = True,
) -> float:
    """When the last job ends if each job starts as soon as its inputs exist, its class has
    vCPUs free and fewer than ``max_jobs`` run. Jobs ready together start as Snakemake's
    greedy scheduler orders them, more input bytes first, then in DAG order; with
    ``larger_first`` False, fewer input bytes first (an order its default ILP scheduler,
    which weighs only priorities, cores and temp files, may pick as well). A job larger than
    its whole class runs alone in it."""
    order = {node.id: i for i, node in enumerate(topological(nodes))}
    by_id = {node.id: node for node in nodes}
    sign = -1.0 if larger_first else 1.0
    waiting, children = _edges(nodes)
    ready = [(sign * by_id[i].input_bytes, order[i], i) for i, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []  # (end, id)
    used: dict[str, float] = {}
    now = 0.0
    while ready or running:
        now = _start_ready(ready, running, used, by_id, max_vcpus, max_jobs, now)
        if not running:
            break
        now, done = heapq.heappop(running)
        node = by_id[done]
        used[node.compute_class] -= node.vcpus
        for child in children[done]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (sign * by_id[child].input_bytes, order[child], child))
    return now


def _start_ready(ready, running, used, by_id, max_vcpus, max_jobs, now) -> float:
    """Start every ready job that fits now, in order; those that do not fit wait."""
    held = []
    while ready and (max_jobs is None or len(running) < max_jobs):
        *key, job = heapq.heappop(ready)
        node = by_id[job]
        cap = max_vcpus.get(node.compute_class, math.inf)
        busy = used.get(node.compute_class, 0.0)
        if busy > 0 and busy + node.vcpus > cap:
            held.append((*key, job))
            continue
        used[node.compute_class] = busy + node.vcpus
        heapq.heappush(running, (now + node.seconds, job))
    for item in held:
        heapq.heappush(ready, item)
    return now


def topological(nodes: Sequence[Node]) -> list[Node]:
    """The nodes with every job after those it waits for, ties in the given order (ids a
    node names but the DAG lacks are ignored: those files exist); ValueError on a cycle."""
    by_id = {node.id: node for node in nodes}
    waiting, children = _edges(nodes)
    ready = [i for i, node in enumerate(nodes) if waiting[node.id] == 0]
    index = {node.id: i for i, node in enumerate(nodes)}
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        out.append(node)
        for child in children[node.id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, index[child])
    if len(out) < len(by_id):
        stuck = sorted(i for i, n in waiting.items() if n > 0)
        raise ValueError(f"the DAG has a cycle through jobs {stuck[:5]}")
    return out


def _edges(nodes: Sequence[Node]) -> tuple[dict[int, int], dict[int, list[int]]]:
    """How many jobs of the DAG each job waits for, and each job's children."""
    ids = {node.id for node in nodes}
    waiting = {node.id: 0 for node in nodes}
    children: dict[int, list[int]] = {node.id: [] for node in nodes}
    for node in nodes:
        for parent in set(node.after) & ids:
            waiting[node.id] += 1
            children[parent].append(node.id)
    return waiting, children
