"""The timeline figure, the PNG, and an HTML page that opens offline and escapes the record."""

from __future__ import annotations

import re
import sys

import pytest

from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.report.phases import PHASES
from snakemake_executor_knot.report.records import parse_run
from snakemake_executor_knot.report.render import timeline_figure, write_html, write_png
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


def test_timeline_groups_jobs_by_rule_with_a_legend():
    jobs = [
        samples.job(1, "prep"),
        samples.job(2, "fit", status="FAILED"),
        samples.job(3, "prep"),
        samples.job(4, "plot"),
    ]
    figure = timeline_figure(parse_run(samples.run(jobs)))
    [axes] = figure.axes
    assert [t.get_text() for t in axes.get_yticklabels()] == ["prep", "fit", "plot"]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [*PHASES, "failed"]
    assert axes.get_xlabel() == "seconds from the run's start"
    assert axes.get_xlim()[0] == 0


def test_png_starts_with_the_png_magic(tmp_path):
    path = write_png(_hostile_run(), tmp_path / "timeline.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_html_is_offline_and_escapes_every_rule_name(tmp_path):
    run = _hostile_run()
    rows = rule_rows(run)
    path = write_html(run, rows, "Spot prices <b>of</b> 2025", tmp_path / "report.html")
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


def test_without_matplotlib_the_timeline_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    with pytest.raises(ConfigError, match="needs matplotlib.*--json"):
        timeline_figure(parse_run(samples.three_rules()))
