"""Per-rule planning: knot's own resources come from the job's evaluated resources, so the
Snakefile, --set-resources, --default-resources and profiles all work."""

from __future__ import annotations

from snakemake_executor_knot.plan import knot_resource

from .conftest import fake_job


def _job(**resources):
    return fake_job(resources=resources)


def test_knot_image_from_any_source_is_read_from_the_job():
    assert knot_resource(_job(knot_image="registry/img:1"), "knot_image") == "registry/img:1"


def test_absent_or_non_text_resources_are_none():
    assert knot_resource(_job(), "knot_image") is None
    assert knot_resource(_job(knot_packages=3), "knot_packages") is None
