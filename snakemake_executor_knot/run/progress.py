"""One line in Snakemake's output whenever the count of jobs in each Batch state changes:
never a line per poll, never a line per job. With --knot-budget it ends with the spend so
far against the budget."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from ..aws.status import TERMINAL, JobState

# Batch's states in the order a job moves through them.
ORDER = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def progress_line(counts: Counter, status: str | None = None) -> str:
    known = [s for s in ORDER if counts.get(s)]
    other = sorted(s for s in counts if s not in ORDER and counts[s])
    line = "knot: Batch jobs: " + ", ".join(f"{counts[s]} {s}" for s in known + other)
    return f"{line}; {status}" if status else line


class Progress:
    """Counts active jobs by state, plus every job already finished in this run."""

    def __init__(
        self, emit: Callable[[str], None], status: Callable[[], str] | None = None
    ) -> None:
        self.emit = emit
        self.status = status  # appended to each line (the budget's spend so far)
        self.done: Counter = Counter()
        self.last: Counter | None = None

    def update(self, states: Iterable[JobState]) -> str | None:
        counts = Counter(self.done)
        for state in states:
            counts[state.status] += 1
            if state.status in TERMINAL:
                self.done[state.status] += 1
        if counts == self.last:
            return None
        self.last = counts
        line = progress_line(counts, self.status() if self.status else None)
        self.emit(line)
        return line
