"""Result rows, their targets, and the table, JSON and Markdown made from them."""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass

_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}


@dataclass(frozen=True)
class Target:
    """``on`` is "knot" (the knot value itself) or "ratio" (knot / baseline)."""

    op: str
    value: float
    on: str = "knot"
    asserted: bool = False  # call counts are deterministic: a miss fails the run

    def check(self, knot: float | None, ratio: float | None) -> bool | None:
        subject = knot if self.on == "knot" else ratio
        if subject is None:
            return None
        return _OPS[self.op](subject, self.value)

    def __str__(self) -> str:
        text = f"{'ratio' if self.on == 'ratio' else 'knot'} {self.op} {self.value:g}"
        return text + (" (asserted)" if self.asserted else "")


@dataclass(frozen=True)
class Row:
    section: str
    metric: str
    knot: float | None
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.knot is None or not self.baseline:
            return None
        return self.knot / self.baseline

    @property
    def passed(self) -> bool | None:
        return self.target.check(self.knot, self.ratio) if self.target else None

    @property
    def failed_assertion(self) -> bool:
        return bool(self.target and self.target.asserted and self.passed is False)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["target"] = str(self.target) if self.target else None
        return {**data, "ratio": self.ratio, "passed": self.passed}


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}".rstrip("0")


def _cells(row: Row) -> list[str]:
    baseline = f"{fmt(row.baseline)} ({row.baseline_name})" if row.baseline_name else "-"
    verdict = {True: "pass", False: "FAIL", None: "-"}[row.passed]
    target = str(row.target) if row.target else "-"
    return [row.section, row.metric, fmt(row.knot), baseline, fmt(row.ratio), target, verdict]


HEADERS = ["section", "metric", "knot", "baseline", "ratio", "target", "result"]


def table(rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    lines = [HEADERS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(s.rstrip() for s in out)


def markdown(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in rows]
    notes = [f"- {r.section} / {r.metric}: {r.note}" for r in rows if r.note]
    return "\n".join(out + ([""] + notes if notes else []))
