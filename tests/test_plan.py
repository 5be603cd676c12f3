"""Per-rule planning: knot's own resources come from the job's evaluated resources, so the
Snakefile, --set-resources, --default-resources and profiles all work."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
from pathlib import Path

import numpy as np
import pytest
from snakemake.common.tbdstring import TBDString

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.plan import BuildTarget, check_job_resources, image_spec, knot_resource
from snakemake_executor_knot.rules.source import RuleSource
from snakemake_executor_knot.settings import KnotConfig

from .conftest import fake_job

TARGET = BuildTarget("knot-base:py3.11", "linux/amd64")


def _job(**resources):
    return fake_job(resources=resources)


def test_knot_image_from_any_source_is_read_from_the_job():
    assert knot_resource(_job(knot_image="registry/img:1"), "knot_image") == "registry/img:1"


def test_absent_or_non_text_resources_are_none():
    assert knot_resource(_job(), "knot_image") is None
    assert knot_resource(_job(knot_packages=3), "knot_packages") is None


def test_a_numpy_param_puts_numpy_in_the_image_of_a_rule_that_never_imports_it():
    source = RuleSource(rule="fit", kind="shell", shell_command="echo {params.n}")
    job = fake_job(params={"n": np.int64(1), "where": Path("/tmp")})
    spec = image_spec(source, job, TARGET, {"when": datetime.date(2026, 1, 1)})
    assert spec.requirements == (f"numpy=={importlib.metadata.version('numpy')}",)
    plain = image_spec(source, fake_job(params={"n": 1}), TARGET, {})
    assert plain.requirements == ()


def test_an_unpicklable_config_value_stops_planning_naming_rule_and_config():
    source = RuleSource(rule="fit", kind="shell", shell_command="true")
    config = {"log": open(os.devnull)}  # noqa: SIM115 - a value that cannot be sent
    try:
        with pytest.raises(RuleError, match=r"Rule 'fit': config cannot be sent"):
            image_spec(source, fake_job(), TARGET, config)
    finally:
        config["log"].close()


def test_a_resource_computed_from_inputs_not_made_yet_waits_for_submission():
    """mem_mb=lambda wc, input: input.size_mb * 2 is '<TBD>' before its inputs exist."""
    later = fake_job(resources={"mem_mb": TBDString()})
    check_job_resources([later], KnotConfig())
    wrong = fake_job(resources={"mem_mb": "lots"})
    with pytest.raises(RuleError, match="resource 'mem_mb' must be a number"):
        check_job_resources([wrong], KnotConfig())
