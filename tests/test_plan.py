"""Per-rule planning: knot's own resources come from the job's evaluated resources, so the
Snakefile, --set-resources, --default-resources and profiles all work."""

from __future__ import annotations

from types import SimpleNamespace

from snakemake.iocontainers import ResourceList

from snakemake_executor_knot.plan import _resource


def _job(**resources):
    return SimpleNamespace(resources=ResourceList(fromdict={"_cores": 1, **resources}))


def test_knot_image_from_any_source_is_read_from_the_job():
    assert _resource(_job(knot_image="registry/img:1"), "knot_image") == "registry/img:1"


def test_absent_or_non_text_resources_are_none():
    assert _resource(_job(), "knot_image") is None
    assert _resource(_job(knot_packages=3), "knot_packages") is None
