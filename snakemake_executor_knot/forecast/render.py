"""The plan as a table for people and as JSON (pure)."""

from __future__ import annotations

import math

from .plan import Plan, RulePlan
from .predict import UNKNOWN, Range

HOW = {
    "scaled": "scaled by input bytes",
    "as-is": "as measured",
    UNKNOWN: "never ran: unknown",
}


def plan_json(plan: Plan) -> dict:
    """The plan as one JSON object (infinite bounds become null)."""
    return {
        "region": plan.region,
        "market": plan.market,
        "runs": plan.runs,
        "skipped_records": [{"path": p, "why": why} for p, why in plan.skipped],
        "rules": [_rule_json(rule) for rule in plan.rules],
        "total": {
            "jobs": sum(r.jobs for r in plan.rules),
            "wall_s": _range(plan.wall_s, 1),
            "vcpu_hours": _range(plan.vcpu_hours, 6),
            "cost_usd": _range(plan.cost_usd, 6),
            "unknown_rules": plan.unknown,
            "unknown_cost_usd_at_most": _number(plan.unknown_cost_usd, 6),
            "startup_s": round(plan.startup_s, 1),
            "critical_path": plan.critical_path,
        },
    }


def _rule_json(rule: RulePlan) -> dict:
    return {
        "rule": rule.rule,
        "jobs": rule.jobs,
        "forecast": rule.kind,
        "samples": rule.samples,
        "job_seconds": _range(rule.seconds, 1),
        "vcpu_hours": _range(rule.vcpu_hours, 6),
        "peak_rss_mb": _range(rule.peak_rss_mb, 1) if rule.peak_rss_mb else None,
        "requested_memory_mib": rule.requested_memory_mib,
        "cost_usd": _range(rule.cost_usd, 6),
    }


def plan_text(plan: Plan) -> str:
    """The per-rule table, the total, the critical path and what the plan could not know."""
    jobs = sum(r.jobs for r in plan.rules)
    lines = [
        f"knot plan: {jobs} job(s) of {len(plan.rules)} rule(s), forecast from "
        f"{plan.runs} earlier run(s); {_markets(plan)} prices for {plan.region}",
    ]
    lines += [f"  skipped {path}: {why}" for path, why in plan.skipped]
    header = ("rule", "jobs", "time per job", "vCPU-h", "peak memory", "cost", "forecast")
    rows = [header, *(_row(rule) for rule in plan.rules)]
    rows.append(
        (
            "total",
            str(jobs),
            f"wall {_span(plan.wall_s, _duration)}",
            _span(plan.vcpu_hours, _hours),
            "",
            _span(plan.cost_usd, _usd),
            "",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if plan.critical_path:
        lines.append("critical path: " + " -> ".join(_collapse(plan.critical_path)))
    lines += _unknown_lines(plan)
    return "\n".join(lines)


def _row(rule: RulePlan) -> tuple[str, ...]:
    if rule.kind == UNKNOWN:
        limit = rule.seconds.high / rule.jobs if rule.jobs else math.inf
        return (
            rule.rule, str(rule.jobs), f"<= {_duration(limit)}",
            f"<= {_hours(rule.vcpu_hours.high)}", f"<= {rule.requested_memory_mib:.0f} MiB asked",
            f"<= {_usd(rule.cost_usd.high)}", HOW[UNKNOWN],
        )  # fmt: skip
    each = rule.seconds.scaled(1 / rule.jobs)
    memory = f"{_span(rule.peak_rss_mb, _mib)}" if rule.peak_rss_mb else "?"
    return (
        rule.rule, str(rule.jobs), _span(each, _duration), _span(rule.vcpu_hours, _hours),
        memory, _span(rule.cost_usd, _usd), f"{HOW[rule.kind]} ({rule.samples} sample(s))",
    )  # fmt: skip


def _unknown_lines(plan: Plan) -> list[str]:
    if not plan.unknown:
        return []
    bound = plan.unknown_cost_usd
    limit = (
        f"up to {_usd(bound)} more at their runtime limits"
        if math.isfinite(bound)
        else "no upper bound: a rule without resources runtime= can run without limit"
    )
    return [
        f"unknown: {', '.join(plan.unknown)} never ran here; the total leaves them out, "
        f"{limit}. The wall time counts their jobs as instant except in its upper bound."
    ]


def _markets(plan: Plan) -> str:
    return "/".join(sorted(set(plan.market.values())))


def _collapse(rules: list[str]) -> list[str]:
    """Rule names along the path, a run of the same rule once with its count."""
    out: list[tuple[str, int]] = []
    for rule in rules:
        if out and out[-1][0] == rule:
            out[-1] = (rule, out[-1][1] + 1)
        else:
            out.append((rule, 1))
    return [name if n == 1 else f"{name} x{n}" for name, n in out]


def _span(value: Range, fmt) -> str:
    return f"{fmt(value.mid)} ({fmt(value.low)}-{fmt(value.high)})"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unbounded"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _hours(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "unbounded"


def _mib(value: float) -> str:
    return f"{value:.0f} MiB"


def _usd(value: float) -> str:
    if math.isnan(value):
        return "$?"
    if not math.isfinite(value):
        return "unbounded"
    # Small workflows cost fractions of a cent: keep three significant digits.
    return f"${value:.4f}" if value >= 0.01 or value == 0 else f"${value:.3g}"


def _range(value: Range | None, digits: int) -> dict | None:
    if value is None:
        return None
    return {k: _number(getattr(value, k), digits) for k in ("low", "mid", "high")}


def _number(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None
