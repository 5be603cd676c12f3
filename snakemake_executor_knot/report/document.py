"""The report as one JSON document (``knot report --json``): a schema version, the run's
id and totals, the prices and what they cover, the images, and per-rule and per-job rows
(pure). The HTML page shows the same facts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from .phases import wall_time, where_time_went
from .pricing import COST_EXCLUDES, COST_INCLUDES, PriceContext, prices_note, stale_warning
from .records import RunRecord
from .table import any_estimated, job_rows, total_cost

# Raised when a key changes meaning or goes; a new key does not raise it.
SCHEMA_VERSION = 1


def report_document(
    run: RunRecord, rows: Sequence[dict], context: PriceContext, today: date | None = None
) -> dict:
    """The whole report of ``run`` as one JSON-ready object (``rows``: ``rule_rows``)."""
    jobs = job_rows(run)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "started": run.started,
        "ended": run.ended,
        "wall_time_s": _rounded(wall_time(run)),
        "totals": {
            "jobs": len(jobs),
            "failed": sum(1 for job in jobs if job["status"] == "FAILED"),
            "retries": sum(row["retries"] for row in rows),
            "cost": round(total_cost(rows), 6),
            "currency": "USD",
            "cost_estimated": any_estimated(rows),
            "unpriced_jobs": sum(row["unpriced_jobs"] for row in rows),
            "api_calls": sum(run.calls.values()),
        },
        "costs": cost_facts(context, any_estimated(rows), today or date.today()),
        "where_time_went": [
            {"span": name, "seconds": round(seconds, 3), "whose": whose}
            for name, seconds, whose in where_time_went(run)
        ],
        "images": images(run),
        "api_calls": dict(sorted(run.calls.items())),
        "versions": dict(run.versions),
        "command": list(run.command),
        "rules": list(rows),
        "jobs": jobs,
    }


def cost_facts(context: PriceContext, estimated: bool, today: date) -> dict:
    """Which prices were used, what the cost counts and leaves out, and whether the table
    is old."""
    return {
        "market": context.market,
        "region": context.region,
        "price_table_as_of": context.table.as_of,
        "spot_prices_from_history": _spot_types(context),
        "note": prices_note(context, estimated),
        "includes": COST_INCLUDES,
        "excludes": COST_EXCLUDES,
        "warning": stale_warning(context.table, context.region, today),
    }


def _spot_types(context: PriceContext) -> list[str]:
    found = context.table.spot_from.get(context.region)
    return found.split(", ") if found and context.market == "spot" else []


def images(run: RunRecord) -> dict:
    """How many images the run built and reused, and each one's times and size."""
    builds = [
        {
            "rules": list(image.rules),
            "tag": image.tag,
            "outcome": image.outcome,
            "build_s": _span(image.build),
            "push_s": _span(image.push),
            "size_bytes": image.size_bytes,
        }
        for image in run.image_builds
    ]
    if not builds:  # a record from before image_builds: its counts only
        return {
            "built": run.images.get("built", 0),
            "reused": run.images.get("skipped", 0),
            "each": [],
        }
    return {
        "built": sum(1 for b in builds if b["outcome"] == "built"),
        "reused": sum(1 for b in builds if b["outcome"] == "cached"),
        "each": builds,
    }


def _span(span: tuple[float, float] | None) -> float | None:
    return None if span is None else round(max(span[1] - span[0], 0.0), 3)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
