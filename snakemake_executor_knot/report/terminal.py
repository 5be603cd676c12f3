"""The short per-rule table knot prints when a run ends (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .phases import wall_time
from .records import RunRecord
from .table import any_estimated, rule_rows, total_cost

_HEADER = ("rule", "jobs", "failed", "retries", "wall", "cost")


def run_summary(run: RunRecord, rows: Sequence[Mapping] | None = None) -> list[str]:
    """Lines of a table, one row per rule in DAG order, then the run's wall time and cost."""
    rows = rule_rows(run) if rows is None else rows
    table = [_HEADER] + [
        (
            str(row["rule"]),
            str(row["jobs"]),
            str(row["failures"]),
            str(row["retries"]),
            _seconds(row["wall_s"]),
            _usd(row["cost_usd"]),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in table
    ]
    estimate = " (estimate)" if any_estimated(rows) else ""
    wall = wall_time(run)
    lines.append(
        f"wall time {_seconds(wall)}, cost {_usd(total_cost(rows))}{estimate}; "
        f"'knot report {run.run_id}' shows where the time went"
    )
    return lines


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}m {seconds:02d}s"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"
