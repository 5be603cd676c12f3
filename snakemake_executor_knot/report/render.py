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
import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ConfigError
from .phases import (
    HOST_PHASES,
    PHASES,
    Segment,
    host_rows,
    job_segments,
    relative,
    run_origin,
    wall_time,
    where_time_went,
)
from .records import JobRecord, RunRecord
from .sizing import profile_block
from .table import any_estimated, rules_in_order, total_cost

# Okabe and Ito's palette, which stays distinguishable with each common kind of colour
# blindness; grey for the host's own wait. Each phase has its own colour.
COLOURS = dict(
    zip(
        PHASES,
        (
            "#999999",  # submission
            "#E69F00",  # queued in Batch: orange
            "#F0E442",  # container start: yellow
            "#56B4E9",  # staging in: sky blue
            "#0072B2",  # running: blue
            "#009E73",  # staging out: bluish green
            "#CC79A7",  # finishing: reddish purple
            "#D55E00",  # status polling: vermilion
            "#000000",  # reporting: black
        ),
        strict=True,
    )
)
# The host's rows: hatched, so they cannot be taken for a job's phase.
HOST_STYLES = {
    "preparation": {"color": "#DDDDDD", "edgecolor": "#555555", "hatch": ""},
    "image build": {"color": "#FFFFFF", "edgecolor": "#0072B2", "hatch": "////"},
    "image push": {"color": "#FFFFFF", "edgecolor": "#009E73", "hatch": "...."},
}
_LABEL_CHARS = 40
GAP_NOTE = (
    "Each bar runs from the host handing the job to Batch to its report to Snakemake, one "
    "phase after another; a gap in a bar is a phase whose times the record lacks (a job "
    "that failed before its container reported, or a record from an older knot)."
)


def timeline_figure(run: RunRecord):
    """A matplotlib Figure: the host's preparation (rule plans, stack, each image build and
    push) at the top, then one horizontal bar per job, rules in DAG order, coloured by
    phase, in seconds from the run's start."""
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

    hosts = host_rows(run)
    groups = rules_in_order(run)
    rows = [job for jobs in groups.values() for job in _by_start(jobs)]
    height = min(2.8 + 0.22 * (len(rows) + len(hosts)), 40)
    figure = Figure(figsize=(10, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    origin = run_origin(run)
    _draw_host(axes, hosts, origin)
    _draw_bars(axes, rows, origin, first=len(hosts))
    _label_rows(axes, hosts, groups)
    axes.set_xlabel("seconds from the run's start")
    wall = wall_time(run)
    total = f", wall time {_duration(wall)}" if wall is not None else ""
    axes.set_title(f"knot run {run.run_id}{total}")  # a run id holds no '$' (records.py)
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
    document: Mapping,
    path: Path | str,
    png: bytes | None = None,
) -> Path:
    """Write the report to ``path`` as one HTML file that opens offline; ``document`` is
    the report's JSON document (``document.py``), ``png`` the timeline if already drawn."""
    path = Path(path)
    path.write_text(html_page(run, rows, document, png or png_bytes(run)), encoding="utf-8")
    return path


def html_page(run: RunRecord, rows: Sequence[Mapping], document: Mapping, png: bytes) -> str:
    """The report page: summary, timeline, where the time went, per-rule and per-job
    tables, suggestions, failures, images, costs, and the run's versions and calls."""
    image = base64.b64encode(png).decode("ascii")
    sections = [
        f"<h1>knot run {_e(run.run_id)}</h1>",
        _summary(run, rows, document),
        "<h2>Timeline</h2>",
        f'<img alt="Timeline of the preparation and of each job, by phase" '
        f'src="data:image/png;base64,{image}">',
        f'<p class="meta">{_e(GAP_NOTE)}</p>',
        "<h2>Where the time went</h2>",
        _critical_path(run),
        "<h2>Per rule</h2>",
        _rule_table(rows),
        "<h2>Per job</h2>",
        _job_table(document["jobs"]),
        "<h2>Suggested sizes</h2>",
        "<p>Paste into your Snakemake profile (config.yaml) to request what the jobs used:</p>",
        f"<pre>{_e(profile_block(rows))}</pre>",
        _failures(run.jobs),
        "<h2>Images</h2>",
        _images(document["images"]),
        "<h2>Costs</h2>",
        _costs(document["costs"]),
        "<h2>The run</h2>",
        _run_facts(document),
    ]
    return _DOCUMENT.format(title=_e(f"knot report {run.run_id}"), body="\n".join(sections))


def _draw_host(axes, hosts: list[tuple[str, list[Segment]]], origin: float) -> None:
    drawn: set[str] = set()
    for y, (_, segments) in enumerate(hosts):
        for segment in relative(segments, origin):
            if not _finite(segment.start, segment.end):
                continue
            label = segment.phase if segment.phase not in drawn else None
            drawn.add(segment.phase)
            style = HOST_STYLES[segment.phase]
            axes.barh(y, segment.end - segment.start, left=segment.start, height=0.8,
                      label=label, linewidth=0.6, **style)  # fmt: skip


def _draw_bars(axes, rows: list[JobRecord], origin: float, first: int = 0) -> None:
    bars: dict[str, list[tuple[float, float, float]]] = {phase: [] for phase in PHASES}
    failed = []
    for y, job in enumerate(rows, start=first):
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
        axes.plot(xs, ys, "X", color="#FFFFFF", markeredgecolor="#000000", markersize=9,
                  label="failed")  # fmt: skip
    axes.set_ylim(first + len(rows) - 0.5, -0.5)  # the first row at the top
    axes.set_xlim(left=0.0)  # the axis starts at the run's start


def _legend(axes) -> None:
    """The host's steps and the phases in time order, then the failure mark."""
    order = [*HOST_PHASES, *PHASES, "failed"]
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


def _label_rows(
    axes, hosts: list[tuple[str, list[Segment]]], groups: Mapping[str, list[JobRecord]]
) -> None:
    """Each host row by name, then rule names at the middle of their jobs' rows, with a
    line between sections."""
    ticks: list[float] = list(range(len(hosts)))
    labels = [_plain(name) for name, _ in hosts]
    first = len(hosts)
    total = first + sum(len(jobs) for jobs in groups.values())
    if hosts and total > first:
        axes.axhline(first - 0.5, color="#636363", linewidth=1.2)
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


def _summary(run: RunRecord, rows: Sequence[Mapping], document: Mapping) -> str:
    pricing, totals = run.pricing, document["totals"]
    facts = [
        f"started {_when(run.started)}",
        f"wall time {_duration(document['wall_time_s'])}",
        f"{totals['jobs']} jobs",
        f"{totals['failed']} failed",
        f"region {pricing.region or 'unknown'}",
        f"{pricing.market} market",
    ]
    if pricing.emulator:
        facts.append("local emulator")
    estimate = " (estimate)" if any_estimated(rows) else ""
    unpriced = totals["unpriced_jobs"]
    missing = f"; {unpriced} jobs could not be priced" if unpriced else ""
    warning = document["costs"]["warning"]
    shown = f'\n<p class="warning">{_e(warning)}</p>' if warning else ""
    return (
        f'<p class="meta">{_e(", ".join(facts))}</p>\n'
        f'<p class="total">Total cost: <strong>{_money(total_cost(rows))}</strong>'
        f"{estimate}{missing} (what it counts: see Costs)</p>{shown}"
    )


_JOB_COLUMNS = (
    "Rule", "Jobid", "Wildcards", "Batch job", "Status", "Attempts", "Exit code",
    "Instance type", "Wall time", "Queued",
)  # fmt: skip


def _job_table(jobs: Sequence[Mapping]) -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in _JOB_COLUMNS)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in _job_cells(job)) + "</tr>"
        for job in jobs
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _job_cells(job: Mapping) -> list[str]:
    wildcards = ", ".join(f"{k}={v}" for k, v in job["wildcards"].items())
    estimate = " (estimate)" if job["instance_estimated"] and job["instance_type"] else ""
    return [
        job["rule"],
        _text(job["jobid"]),
        wildcards or "-",
        _text(job["batch_id"]),
        _text(job["status"]),
        _text(job["attempts"]),
        _text(job["exit_code"]),
        _text(job["instance_type"]) + estimate,
        _duration(job["wall_s"]),
        _duration(job["queued_s"]),
    ]


def _images(images: Mapping) -> str:
    summary = f"<p>{images['built']} built, {images['reused']} reused from ECR.</p>"
    if not images["each"]:
        return summary
    rows = "\n".join(
        f"<tr><td>{_e(', '.join(i['rules']))}</td><td>{_e(i['outcome'])}</td>"
        f"<td>{_e(i['tag'][:16])}</td><td>{_e(_duration(i['build_s']))}</td>"
        f"<td>{_e(_duration(i['push_s']))}</td><td>{_e(_size(i['size_bytes']))}</td></tr>"
        for i in images["each"]
    )
    return (
        f"{summary}\n<table>\n<thead><tr><th>Rules</th><th>Outcome</th><th>Tag</th>"
        f"<th>Build</th><th>Push</th><th>Size</th></tr></thead>\n<tbody>\n{rows}\n"
        "</tbody>\n</table>"
    )


def _costs(costs: Mapping) -> str:
    warning = f'<p class="warning">{_e(costs["warning"])}</p>\n' if costs["warning"] else ""
    return (
        f"{warning}<p><strong>Included:</strong> {_e(costs['includes'])}.</p>\n"
        f"<p><strong>Not included:</strong> {_e(costs['excludes'])}.</p>\n"
        f"<p>{_e(costs['note'])}</p>"
    )


def _run_facts(document: Mapping) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in document["versions"].items()) or "not recorded"
    command = " ".join(shlex.quote(part) for part in document["command"]) or "not recorded"
    calls = "".join(
        f"<tr><td>{_e(name)}</td><td>{count}</td></tr>"
        for name, count in document["api_calls"].items()
    )
    return (
        f"<p>Versions: {_e(versions)}</p>\n<p>Command line:</p>\n<pre>{_e(command)}</pre>\n"
        f"<p>AWS API calls: {document['totals']['api_calls']}</p>\n"
        "<table>\n<thead><tr><th>Call</th><th>Count</th></tr></thead>\n"
        f"<tbody>{calls}</tbody>\n</table>"
    )


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _size(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.0f} MB"


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
.warning {{ color: #8a3b00; font-weight: bold; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
