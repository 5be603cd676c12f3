"""The timeline figure, the PNG, and an HTML page that opens offline and escapes the record."""

from __future__ import annotations

import re
import sys
from datetime import date

import pytest

from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.report.document import report_document
from snakemake_executor_knot.report.phases import HOST_PHASES, PHASES
from snakemake_executor_knot.report.pricing import load_prices, price_context
from snakemake_executor_knot.report.records import parse_run
from snakemake_executor_knot.report.render import COLOURS, timeline_figure, write_html, write_png
from snakemake_executor_knot.report.table import rule_rows

from . import samples

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = ["<script>", "a&b", '"quoted"', "$x$", "fit"]


def _hostile_run():
    jobs = [samples.job(i, rule) for i, rule in enumerate(HOSTILE)]
    jobs.append(
        samples.job(9, "fit", status="FAILED", reason="<img src=x onerror=alert(1)>", usage=None)
    )
    jobs.append({"jobid": 10, "rule": "fit"})  # failed before any time was recorded
    return parse_run(samples.run(jobs))


def test_timeline_groups_jobs_by_rule_in_dag_order_with_a_legend():
    t = samples.STARTED
    host = dict(samples.job()["host"], seen_finished=t + 29.5)
    jobs = [
        samples.job(1, "plot", host=host),
        samples.job(2, "fit", status="FAILED", host=host),
        samples.job(3, "prep", host=host),
        samples.job(4, "prep", host=host),
    ]
    builds = [{"rules": ["fit"], "tag": "f" * 64, "outcome": "built", "build": [t, t + 1.0],
               "push": [t + 1.0, t + 1.5], "size_bytes": 1}]  # fmt: skip
    steps = {"rule plans": [t, t + 0.2], "stack check": [t + 0.2, t + 0.4]}
    record = samples.run(
        jobs, rule_order=["prep", "fit", "plot"], image_builds=builds, steps=steps, ended=t + 31
    )
    figure = timeline_figure(parse_run(record))
    [axes] = figure.axes
    assert [t.get_text() for t in axes.get_yticklabels()] == [
        "rule plans, stack", "image fit", "prep", "fit", "plot",
    ]  # fmt: skip
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == [*HOST_PHASES, *PHASES, "failed"]
    assert axes.get_title() == f"knot run {samples.RUN_ID}, wall time 31.0 s"
    assert axes.get_xlabel() == "seconds from the run's start"
    assert axes.get_xlim()[0] == 0
    # The image build is the first bar, at second 0.
    host_bars = [p for p in axes.patches if p.get_y() < 1]
    assert min(p.get_x() for p in host_bars) == 0.0


def test_every_phase_has_its_own_okabe_ito_colour():
    okabe_ito = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
                 "#000000"}  # fmt: skip
    colours = list(COLOURS.values())
    assert len(set(colours)) == len(PHASES) == len(colours)
    assert set(colours) - okabe_ito == {"#999999"}  # the host's wait, in grey


def test_png_starts_with_the_png_magic(tmp_path):
    path = write_png(_hostile_run(), tmp_path / "timeline.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_html_is_offline_and_escapes_every_rule_name(tmp_path):
    run = _hostile_run()
    rows = rule_rows(run)
    context = price_context(run.pricing, load_prices())
    document = report_document(run, rows, context, today=date(2025, 2, 1))
    document["costs"]["note"] = "Spot prices <b>of</b> 2025"
    path = write_html(run, rows, document, tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    for rule in ("&lt;script&gt;", "a&amp;b", "&quot;quoted&quot;", "$x$", "fit"):
        assert f"<td>{rule}</td>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Spot prices &lt;b&gt;of&lt;/b&gt; 2025" in page
    assert "Total cost:" in page and "(estimate)" in page
    assert re.search(r'<img alt="[^"]*" src="data:image/png;base64,iVBORw0KGgo', page)
    assert "set-resources:" in page
    # The per-job table, the costs' scope and the run's facts
    assert "<td>abc:9</td><td>FAILED</td>" in page
    assert "<strong>Not included:</strong> instance time no job used" in page
    assert "Versions:" in page and "Command line:" in page


def test_html_per_job_rows_carry_wildcards_batch_id_and_exit_code(tmp_path):
    jobs = [
        samples.job(5, "mask", wildcards={"subject": "sub-05"}, batch_id="arr:1", exit_code=2,
                    status="FAILED", attempts=3, instance_type="m5.large"),
        samples.job(4, "mask", wildcards={"subject": "sub-04"}, batch_id="arr:0", exit_code=0),
    ]  # fmt: skip
    record = samples.run(
        jobs, versions={"knot": "0.1.0"}, command=["snakemake", "--executor", "knot"]
    )
    run = parse_run(record)
    rows = rule_rows(run)
    document = report_document(run, rows, price_context(run.pricing, load_prices()))
    page = write_html(run, rows, document, tmp_path / "r.html").read_text()
    assert (
        "<tr><td>mask</td><td>5</td><td>subject=sub-05</td><td>arr:1</td><td>FAILED</td>"
        "<td>3</td><td>2</td><td>m5.large</td>"
    ) in page
    assert page.index("sub-04") < page.index("sub-05")  # each rule's jobs by jobid
    assert "knot 0.1.0" in page and "snakemake --executor knot" in page


def test_without_matplotlib_the_timeline_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    with pytest.raises(ConfigError, match="needs matplotlib.*--json"):
        timeline_figure(parse_run(samples.three_rules()))
