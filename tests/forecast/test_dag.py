"""The jobs a run would submit, from Snakemake's own parser and DAG (no AWS)."""

from __future__ import annotations

import os

import pytest

from snakemake_executor_knot.errors import ConfigError, RuleError
from snakemake_executor_knot.forecast.dag import plan_jobs

SNAKEFILE = """
localrules: all

rule all:
    input: "total.txt"

rule part:
    input: "data/{i}.txt"
    output: "parts/{i}.txt"
    threads: 2
    resources: mem_mb=3000, runtime=10
    shell: "cp {input} {output}"

rule total:
    input: expand("parts/{i}.txt", i=range(config.get("count", 2)))
    output: "total.txt"
    resources: knot_class=config.get("klass", "default")
    shell: "cat {input} > {output}"
"""


def where(folder) -> list[str]:
    return ["--snakefile", str(folder / "Snakefile"), "--directory", str(folder)]


@pytest.fixture
def workflow(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "data").mkdir()
    for i in range(3):
        (tmp_path / "data" / f"{i}.txt").write_bytes(b"x" * (100 * (i + 1)))
    return tmp_path


def test_jobs_edges_sizes_and_requests(workflow):
    cwd = os.getcwd()
    planned = plan_jobs([*where(workflow), "--jobs", "3", "--config", "count=3"])
    assert os.getcwd() == cwd
    assert planned.max_jobs == 3
    by_rule: dict[str, list] = {}
    for job in planned.jobs:
        by_rule.setdefault(job.rule, []).append(job)
    assert sorted(by_rule) == ["part", "total"]  # the local rule 'all' is no Batch job
    parts, (total,) = by_rule["part"], by_rule["total"]
    assert len(parts) == 3
    assert set(total.after) == {job.id for job in parts}
    sizes = sorted(size for job in parts for size in job.sizes.values())
    assert sizes == [100.0, 200.0, 300.0]
    assert parts[0].request.vcpus == 2 and parts[0].request.memory_mib == 3000
    assert parts[0].request.timeout_s == 600
    assert total.sizes == {path: None for path in total.inputs}  # not written yet


def test_a_bad_request_is_the_runs_error(workflow):
    with pytest.raises(RuleError, match="knot_class"):
        plan_jobs([*where(workflow), "--config", "klass=nope"])


def test_bad_snakemake_arguments_are_a_clear_error(workflow):
    with pytest.raises(ConfigError, match="Invalid config definition"):
        plan_jobs([*where(workflow), "--config", "n=4"])
