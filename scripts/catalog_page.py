"""Render knot's catalog page with the plugin catalog's own functions and template.

Called by scripts/check-catalog-docs with the catalog's ``source`` folder, knot's root
and an output folder; writes ``knot.rst`` and a minimal Sphinx ``conf.py`` there. The
metadata the catalog would read from PyPI comes from pyproject.toml, as it is published.
"""

from __future__ import annotations

import json
import sys
import textwrap
import tomllib
from pathlib import Path

source, root, site = (Path(arg) for arg in sys.argv[1:4])
sys.path.insert(0, str(source))
# The catalog's module: imported, not copied; its heavy work (PyPI, pixi) is not called.
import collect_plugins  # noqa: E402
from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: E402

project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
repository = project["urls"]["Repository"].replace(".git", "").rstrip("/")
intro = collect_plugins._convert_markdown_to_rst((root / "docs/intro.md").read_text(), "intro")
further_md = (root / "docs/further.md").read_text()
further = collect_plugins._convert_markdown_to_rst(further_md, "further")
settings = json.loads((site.parent / "settings.json").read_text())
if not intro or not further:
    sys.exit("docs/intro.md or docs/further.md is empty")

# The same environment options as collect_plugins.collect_plugins.
templates = Environment(
    loader=FileSystemLoader(str(source / "_templates")),
    autoescape=select_autoescape(),
    trim_blocks=True,
    lstrip_blocks=True,
)


def get_setting_meta(setting, key, default="", verb=False):
    # The catalog defines this inside collect_plugins(); it is re-stated here by behaviour.
    value = setting.get(key, default)
    if verb:
        return f"``{value!r}``"
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return default if value is None else value


page = templates.get_template("executor_plugin.rst.j2").render(
    plugin_name="knot",
    package_name=project["name"],
    authors=[author["name"] for author in project.get("authors", [])],
    repository=repository,
    repo_shortname=collect_plugins.get_repo_shortname(repository),
    repository_type="github" if repository.startswith("https://github.com") else None,
    commit_info=None,
    commit_url=repository,
    commit_age_color=None,
    commit_date_label=None,
    snakemake_version=">=9.0",
    meta={"info": {"version": "0"}},
    desc="",
    docs_intro=intro,
    docs_further=further,
    docs_warning="",
    plugin_type="executor",
    settings=settings,
    get_setting_meta=get_setting_meta,
    error=None,
    textwrap=textwrap,
)
(site / "knot.rst").write_text(page)
(site / "index.rst").write_text("knot\n====\n\n.. toctree::\n\n   knot\n")
(site / "conf.py").write_text('project = "knot catalog check"\n')
print(f"wrote {site / 'knot.rst'}: {len(page.splitlines())} lines, {len(settings)} settings")
