"""What the Snakemake plugin catalog reads from the project: docs/intro.md and
docs/further.md (converted to reStructuredText under its own headings), and the package
metadata. scripts/check-catalog-docs renders the page with the catalog's own code; these
checks keep the files in the shape that rendering needs, without the catalog at hand."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ("need", "credentials", "stack", "first run", "tools", "costs", "debugging", "teardown")


def headings(text: str) -> list[tuple[int, str]]:
    body = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold comments, not titles
    return [(len(m.group(1)), m.group(2)) for m in re.finditer(r"^(#+) (.+)$", body, re.M)]


def test_intro_is_sentences_under_the_catalogs_own_title():
    # The catalog puts the intro between its page title and its "Installation" section: a
    # heading here would swallow Installation, Usage and Settings as its subsections.
    text = (ROOT / "docs/intro.md").read_text()
    assert headings(text) == [] and len(text.split()) > 60


def test_further_covers_what_a_lab_needs_in_top_level_sections():
    found = headings((ROOT / "docs/further.md").read_text())
    assert found and found[0][0] == 1  # the catalog nests '#' under "Further details"
    titles = " | ".join(title.lower() for level, title in found if level == 1)
    for topic in TOPICS:
        assert topic in titles, topic


def test_package_metadata_names_repository_license_authors():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"].startswith("https://github.com/")
    assert project["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    assert project["authors"] and project["keywords"] and project["classifiers"]
    assert any(c.startswith("Topic ::") for c in project["classifiers"])


def test_the_catalog_renders_the_page(tmp_path):
    """With the catalog's repository at hand (KNOT_CATALOG_GIT: its git directory), the
    page renders through its collect_plugins.py, its template and Sphinx -W."""
    catalog = os.environ.get("KNOT_CATALOG_GIT")
    if not catalog:
        pytest.skip("KNOT_CATALOG_GIT is not set")
    subprocess.run([str(ROOT / "scripts/check-catalog-docs"), catalog], check=True, timeout=900)
    html = (ROOT / ".catalog-check/site/_build/knot.html").read_text()
    for title in ("Further details", "Teardown", "--knot-stack-name"):
        assert title in html
