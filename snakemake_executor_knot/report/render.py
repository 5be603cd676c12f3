"""The report as files: the timeline as a PNG, and one self-contained HTML page.

The timeline is drawn with matplotlib: it is well kept, works offline, is already installed in
most scientists' Python environments, and writes both PNG and SVG without a browser or a
server. The HTML page fetches nothing: the figure is inlined as a base64 PNG, the CSS is
inline, and there is no script. Every string that comes from the run record is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ConfigError
from .phases import PHASES, job_segments, relative, run_origin, where_time_went
from .records import JobRecord, RunRecord
from .sizing import profile_block
from .table import any_estimated, by_rule, total_cost

COLOURS = dict(
    zip(
        PHASES,
        ("#bdbdbd", "#fdae6b", "#fdd0a2", "#9ecae1", "#3182bd", "#6baed6", "#a1d99b"),
        strict=True,
    )
)
_LABEL_CHARS = 40


def timeline_figure(run: RunRecord):
    """A matplotlib Figure: one horizontal bar per job, grouped by rule, coloured by phase,
    in seconds from the run's start."""
    # Imported here: matplotlib is heavy, and only the report needs it. The Agg canvas is
    # attached to this figure alone, so a user's own pyplot backend is left as it was.
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(
            "the report's timeline needs matplotlib: 'pip install matplotlib', or use "
            "'knot report --json' or '--profile-block', which do not draw."
        ) from exc

    groups = by_rule(run.jobs)
    rows = [job for jobs in groups.values() for job in _by_start(jobs)]
    figure = Figure(figsize=(10, min(2.5 + 0.22 * len(rows), 40)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    _draw_bars(axes, rows, run_origin(run))
    _label_rules(axes, groups)
    axes.set_xlabel("seconds from the run's start")
    axes.set_title(_plain(f"knot run {run.run_id}"))
    _legend(axes)
    return figure


def png_bytes(run: RunRecord) -> bytes:
    """The timeline as PNG bytes."""
    buffer = io.BytesIO()
    timeline_figure(run).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write_png(run: RunRecord, path: Path | str) -> Path:
    """Write the timeline to ``path`` as a PNG."""
    path = Path(path)
    path.write_bytes(png_bytes(run))
    return path


def write_html(
    run: RunRecord,
    rows: Sequence[Mapping],
    prices_note: str,
    path: Path | str,
    png: bytes | None = None,
) -> Path:
    """Write the report to ``path`` as one HTML file that opens offline; ``png`` is the
    timeline if already rendered."""
    path = Path(path)
    path.write_text(html_page(run, rows, prices_note, png or png_bytes(run)), encoding="utf-8")
    return path


def html_page(run: RunRecord, rows: Sequence[Mapping], prices_note: str, png: bytes) -> str:
    """The report page: summary, timeline, per-rule table, suggestions, failures, prices."""
    image = base64.b64encode(png).decode("ascii")
    sections = [
        f"<h1>knot run {_e(run.run_id)}</h1>",
        _summary(run, rows),
        "<h2>Timeline</h2>",
        f'<img alt="Timeline of each job, by phase" src="data:image/png;base64,{image}">',
        "<h2>Where the time went</h2>",
        _critical_path(run),
        "<h2>Per rule</h2>",
        _rule_table(rows),
        "<h2>Suggested sizes</h2>",
        "<p>Paste into your Snakemake profile (config.yaml) to request what the jobs used:</p>",
        f"<pre>{_e(profile_block(rows))}</pre>",
        _failures(run.jobs),
        "<h2>Prices</h2>",
        f"<p>{_e(prices_note)}</p>",
    ]
    return _DOCUMENT.format(title=_e(f"knot report {run.run_id}"), body="\n".join(sections))


def _draw_bars(axes, rows: list[JobRecord], origin: float) -> None:
    bars: dict[str, list[tuple[float, float, float]]] = {phase: [] for phase in PHASES}
    failed = []
    for y, job in enumerate(rows):
        segments = [s for s in relative(job_segments(job), origin) if _finite(s.start, s.end)]
        for segment in segments:
            bars[segment.phase].append((y, segment.start, segment.end - segment.start))
        if job.status == "FAILED" and segments:
            failed.append((segments[-1].end, y))
    for phase, items in bars.items():
        if items:
            ys, lefts, widths = zip(*items, strict=True)
            axes.barh(ys, widths, left=lefts, height=0.8, color=COLOURS[phase], label=phase)
    if failed:
        xs, ys = zip(*failed, strict=True)
        axes.plot(xs, ys, "x", color="#de2d26", markersize=8, label="failed")
    axes.set_ylim(len(rows) - 0.5, -0.5)  # first job at the top
    earliest = min((start for items in bars.values() for _, start, _ in items), default=0.0)
    axes.set_xlim(left=min(earliest, 0.0))  # the axis starts at the run's start


def _legend(axes) -> None:
    """Phases in time order, then the failure mark (matplotlib lists markers first)."""
    order = [*PHASES, "failed"]
    pairs = sorted(
        zip(*axes.get_legend_handles_labels(), strict=True), key=lambda p: order.index(p[1])
    )
    if pairs:
        handles, labels = zip(*pairs, strict=True)
        axes.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12),
            ncol=4,
            fontsize="small",
        )


def _label_rules(axes, groups: Mapping[str, list[JobRecord]]) -> None:
    """Rule names at the middle of their jobs' rows, with a line between rules."""
    ticks, labels, first = [], [], 0
    total = sum(len(jobs) for jobs in groups.values())
    for rule, jobs in groups.items():
        ticks.append(first + (len(jobs) - 1) / 2)
        labels.append(_plain(rule))
        first += len(jobs)
        if first < total:
            axes.axhline(first - 0.5, color="#636363", linewidth=0.6)
    axes.set_yticks(ticks, labels)


def _by_start(jobs: list[JobRecord]) -> list[JobRecord]:
    def start(job: JobRecord) -> float:
        return min((s.start for s in job_segments(job)), default=math.inf)

    return sorted(jobs, key=start)


def _plain(text: str) -> str:
    """A label matplotlib draws as written: '$' would start mathtext, long names are cut."""
    if len(text) > _LABEL_CHARS:
        text = text[: _LABEL_CHARS - 1] + "…"
    return text.replace("$", r"\$")


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _summary(run: RunRecord, rows: Sequence[Mapping]) -> str:
    pricing = run.pricing
    facts = [
        f"started {_when(run.started)}",
        f"{len(run.jobs)} jobs",
        f"region {pricing.region or 'unknown'}",
        f"{pricing.market} market",
    ]
    if pricing.emulator:
        facts.append("local emulator")
    estimate = " (estimate)" if any_estimated(rows) else ""
    unpriced = sum(row["unpriced_jobs"] for row in rows)
    missing = f"; {unpriced} jobs could not be priced" if unpriced else ""
    return (
        f'<p class="meta">{_e(", ".join(facts))}</p>\n'
        f'<p class="total">Total cost: <strong>{_money(total_cost(rows))}</strong>'
        f"{estimate}{missing}</p>"
    )


_COLUMNS = (
    "Rule",
    "Jobs",
    "Wall time",
    "CPU time",
    "Peak memory / requested",
    "vCPU usage / requested",
    "Failures",
    "Retries",
    "Lost to spot reclaims",
    "Cost",
    "Priced on",
    "Suggested mem_mb",
    "Suggested threads",
    "Cost if resized",
)


def _critical_path(run: RunRecord) -> str:
    """The wall time along the chain of jobs that ended last, span by span, and whose."""
    spent = where_time_went(run)
    total = sum(seconds for _, seconds, _ in spent)
    body = "\n".join(
        f"<tr><td>{_e(name)}</td><td>{_e(_duration(seconds))}</td>"
        f"<td>{_e(_percent(seconds / total if total else None))}</td><td>{_e(whose)}</td></tr>"
        for name, seconds, whose in spent
    )
    return (
        "<p>Along the chain of jobs that ended last (each released by the one before):</p>\n"
        "<table>\n<thead><tr><th>Span</th><th>Seconds</th><th>Share</th><th>Whose</th></tr>"
        f"</thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    )


def _rule_table(rows: Sequence[Mapping]) -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in _COLUMNS)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in _cells(row)) + "</tr>" for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _lost(reclaims: Mapping) -> str:
    if not reclaims["count"]:
        return "-"
    lost = f"{_duration(reclaims['lost_s'])}, {_money(reclaims['lost_usd'])}"
    return f"{reclaims['count']} reclaim(s): {lost}"


def _cells(row: Mapping) -> list[str]:
    estimate = " (estimate)" if row["cost_estimated"] else ""
    return [
        row["rule"],
        str(row["jobs"]),
        _duration(row["wall_s"]),
        _duration(row["cpu_s"]),
        f"{_num(row['peak_rss_mb'])} / {_num(row['requested_mem_mb'])} MiB "
        f"({_percent(row['mem_usage'])})",
        f"{_percent(row['vcpu_usage'])} of {_num(row['requested_threads'])}",
        str(row["failures"]),
        str(row["retries"]),
        _lost(row["reclaims"]),
        _money(row["cost_usd"]) + estimate,
        ", ".join(row["instance_types"]) or "-",
        _num(row["suggested_mem_mb"]),
        _num(row["suggested_threads"]),
        _money(row["cost_usd_if_resized"]),
    ]


def _failures(jobs: Sequence[JobRecord]) -> str:
    failed = [job for job in jobs if job.status == "FAILED"]
    if not failed:
        return ""
    items = "\n".join(
        f"<li>{_e(job.rule)} (job {_e(job.jobid)}, Batch {_e(job.batch_id or '-')}, "
        f"{_e(job.attempts or 1)} attempts): {_e(job.reason or 'no reason recorded')}</li>"
        for job in failed
    )
    return f"<h2>Failures</h2>\n<ul>\n{items}\n</ul>"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "at an unknown time"
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return f"at epoch {epoch:g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _money(usd: float | None) -> str:
    if usd is None:
        return "-"
    return f"${usd:.2f}" if usd >= 1 else f"${usd:.4f}"


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


_DOCUMENT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
pre {{ background: #f7f7f7; padding: 0.8em; }}
.total {{ font-size: 1.2em; }}
.meta {{ color: #555; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
