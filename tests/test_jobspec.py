"""The job spec document, built from Snakemake's own named lists, compared as a dict."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from snakemake.io import IOFile, directory
from snakemake.iocontainers import InputFiles

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.jobspec import build_spec, encode, spec_records, upload_specs
from snakemake_executor_knot.runtime.report import JobFailure
from snakemake_executor_knot.runtime.spec import fetch_spec, spec_location

from .conftest import FakeJob, fake_job, named


def _job(params=None, shellcmd=None):
    return fake_job(
        rule="fit",
        jobid=7,
        input={"dwi": "sub-01/dwi.npy", "masks": directory("masks")},
        output={"fa": "fit/sub-01.json"},
        log=["logs/fit-01.log"],
        params=params if params is not None else {"alpha": 0.5, "opts": {"k": [1, 2]}},
        wildcards={"subject": "01"},
        resources={"mem_mb": 1000, "tmpdir": "/tmp/x"},
        threads=2,
        shellcmd=shellcmd,
        script="scripts/plot.py",
    )


def _uri(path: str) -> str:
    return f"s3://bucket/knot/files/abc/{path}"


def test_run_spec_matches_contract():
    spec = build_spec(_job(), "run", _uri, {"subjects": ["01"]})
    assert spec == {
        "version": 1,
        "rule": "fit",
        "kind": "run",
        "jobid": 7,
        "input": {
            "items": [
                {"path": "sub-01/dwi.npy", "uri": _uri("sub-01/dwi.npy"), "directory": False},
                {"path": "masks", "uri": _uri("masks") + "/", "directory": True, "manifest": True},
            ],
            "names": {"dwi": [0, None], "masks": [1, None]},
        },
        "output": {
            "items": [
                {"path": "fit/sub-01.json", "uri": _uri("fit/sub-01.json"), "directory": False}
            ],
            "names": {"fa": [0, None]},
        },
        "log": {
            "items": [
                {"path": "logs/fit-01.log", "uri": _uri("logs/fit-01.log"), "directory": False}
            ],
            "names": {},
        },
        "benchmark": None,
        "params": {"items": [0.5, {"k": [1, 2]}], "names": {"alpha": [0, None], "opts": [1, None]}},
        "wildcards": {"items": ["01"], "names": {"subject": [0, None]}},
        "resources": {"items": [2, 1000], "names": {"_cores": [0, None], "mem_mb": [1, None]}},
        "threads": 2,
        "config": {"subjects": ["01"]},
    }


def test_shell_and_script_specs_carry_their_command():
    shell = build_spec(_job(shellcmd="cat {input} > {output}"), "shell", _uri, {})
    assert shell["shell"] == {"command": "cat {input} > {output}", "executable": "bash"}
    script = build_spec(_job(), "script", _uri, {})
    assert script["script"] == {"path": "scripts/plot.py"}
    assert "shell" not in script


def test_unserialisable_param_names_rule_and_param():
    params = {"model": object()}
    with pytest.raises(RuleError, match=r"Rule 'fit': param 'model'"):
        build_spec(_job(params=params), "run", _uri, {})


def test_specs_are_small_and_carry_no_credentials():
    spec = build_spec(_job(), "run", _uri, {})
    text = json.dumps(spec)
    assert "AWS_SECRET" not in text and "testing" not in text
    assert len(text) < 2000


def test_spec_records_have_one_width_and_are_json_lines():
    specs = [{"jobid": 1, "wildcards": "a"}, {"jobid": 22, "wildcards": "abcdef"}, {}]
    body, width = spec_records(specs)
    assert len(body) == 3 * width
    assert width == len(b'{"jobid":22,"wildcards":"abcdef"}') + 1
    records = [body[i * width : (i + 1) * width] for i in range(3)]
    assert all(r.endswith(b"\n") for r in records)
    assert [json.loads(r) for r in records] == specs
    assert [json.loads(line) for line in body.decode().splitlines()] == specs


def test_upload_specs_writes_one_object_read_by_range(clients):
    """What an array child does: a ranged GET of its own record."""
    s3 = clients.s3
    s3.create_bucket(Bucket="bucket")
    specs = [
        {"version": 1, "kind": "run", "rule": "fit", "jobid": i, "p": "x" * i} for i in range(12)
    ]
    width = upload_specs(s3, "bucket", "knot/specs/run/fit-1.jsonl", specs, "fit")
    env = {
        "KNOT_SPEC_URI": "s3://bucket/knot/specs/run/fit-1.jsonl",
        "KNOT_SPEC_RECORD_BYTES": str(width),
        "AWS_BATCH_JOB_ARRAY_INDEX": "7",
    }
    assert fetch_spec(s3, spec_location(env)) == specs[7]
    with pytest.raises(JobFailure, match=rf"job spec .*bytes {12 * width}-.*InvalidRange"):
        fetch_spec(s3, spec_location({**env, "AWS_BATCH_JOB_ARRAY_INDEX": "12"}))
    assert len(s3.list_objects_v2(Bucket="bucket")["Contents"]) == 1


def test_input_produced_as_directory_is_marked_directory():
    """Snakemake flags directory() on the producer's output only."""
    job = _job()
    job.input = named(InputFiles, [IOFile("fit/sub-01", rule=None)])
    producer = FakeJob(output=[IOFile(directory("fit/sub-01"), rule=None)])
    job.dag = SimpleNamespace(dependencies={job: {producer: {"fit/sub-01"}}})
    spec = build_spec(job, "run", _uri, {})
    assert spec["input"]["items"] == [
        {"path": "fit/sub-01", "uri": _uri("fit/sub-01") + "/", "directory": True, "manifest": True}
    ]


def test_encoding_keeps_the_order_of_names_and_config():
    """input.keys() and iteration over config follow declaration order, as in Snakemake."""
    job = _job()
    spec = build_spec(job, "run", _uri, {"zeta": 1, "alpha": 2})
    decoded = json.loads(encode(spec))
    assert list(decoded["input"]["names"]) == ["dwi", "masks"]
    assert list(decoded["params"]["names"]) == ["alpha", "opts"]
    assert list(decoded["config"]) == ["zeta", "alpha"]
