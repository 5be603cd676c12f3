"""The job spec document, built from Snakemake's own named lists, compared as a dict."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import snakemake.api  # loads snakemake.workflow, whose own import order this needs
from boto3.s3.transfer import TransferConfig
from snakemake.io import IOFile, directory, ensure
from snakemake.iocontainers import InputFiles
from snakemake.shell import shell as snakemake_shell

from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.jobs.config import config_object, upload_config
from snakemake_executor_knot.jobs.spec import (
    build_spec,
    encode,
    spec_path,
    spec_records,
    storage_uri,
    upload_specs,
)
from snakemake_executor_knot.jobs.values import required_modules
from snakemake_executor_knot.runtime.config import with_config
from snakemake_executor_knot.runtime.contract import SPEC_VERSION
from snakemake_executor_knot.runtime.integrity import merkle_tree, root_from_proof
from snakemake_executor_knot.runtime.namespace import Namespace
from snakemake_executor_knot.runtime.report import JobFailure
from snakemake_executor_knot.runtime.spec import fetch_spec, spec_location

from ..conftest import FakeJob, fake_job, named


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


CONFIG_REF = {"uri": "s3://bucket/knot/specs/config/ab.json", "sha256": "ab" * 32}


def test_run_spec_matches_contract():
    spec = build_spec(_job(), "run", _uri, CONFIG_REF)
    assert spec == {
        "version": SPEC_VERSION,
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
        "config_ref": CONFIG_REF,
    }


def test_shell_and_script_specs_carry_their_command():
    shell = build_spec(_job(shellcmd="cat {input} > {output}"), "shell", _uri)
    assert shell["shell"] == {"command": "cat {input} > {output}", "executable": "bash"}
    script = build_spec(_job(), "script", _uri)
    assert script["script"] == {"path": "scripts/plot.py"}
    assert "shell" not in script


def test_unserialisable_param_names_rule_and_param():
    params = {"model": lambda x: x}
    with pytest.raises(RuleError, match=r"Rule 'fit': param 'model'"):
        build_spec(_job(params=params), "run", _uri)


def test_specs_are_small_and_carry_no_credentials():
    spec = build_spec(_job(), "run", _uri)
    text = json.dumps(spec)
    assert "AWS_SECRET" not in text and "testing" not in text
    assert len(text) < 2000


def test_spec_records_have_one_width_and_a_proof_each():
    specs = [{"jobid": 1, "wildcards": "a"}, {"jobid": 22, "wildcards": "abcdef"}, {}]
    written = spec_records(specs)
    width = written.record_bytes
    assert len(written.body) == 3 * width
    records = [written.body[i * width : (i + 1) * width] for i in range(3)]
    assert all(r.endswith(b"\n") for r in records)
    for index, (record, spec) in enumerate(zip(records, specs, strict=True)):
        proof, document = record.rstrip().split(b"\n")
        assert json.loads(document) == spec
        steps = proof.decode().split(",")
        assert root_from_proof(index, document, steps) == written.digest


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
def test_every_leaf_proves_the_root_and_only_at_its_own_index(count):
    docs = [f"doc {i}".encode() for i in range(count)]
    root, proofs = merkle_tree(docs)
    for i, (doc, proof) in enumerate(zip(docs, proofs, strict=True)):
        assert root_from_proof(i, doc, proof) == root
        assert root_from_proof(i, doc + b" ", proof) != root
        if count > 1:
            assert root_from_proof((i + 1) % count, doc, proof) != root


def _upload(clients, specs):
    s3 = clients.s3
    s3.create_bucket(Bucket="bucket")
    written = upload_specs(s3, "bucket", "knot/specs/run/fit-1.jsonl", specs, "fit")
    env = {
        "KNOT_SPEC_URI": "s3://bucket/knot/specs/run/fit-1.jsonl",
        "KNOT_SPEC_RECORD_BYTES": str(written.record_bytes),
        "KNOT_SPEC_SHA256": written.digest,
        "AWS_BATCH_JOB_ARRAY_INDEX": "7",
    }
    return s3, written, env


def _specs(count=12):
    return [
        {"version": SPEC_VERSION, "kind": "run", "rule": "fit", "jobid": i, "p": "x" * i}
        for i in range(count)
    ]


def test_upload_specs_writes_one_object_read_by_range(clients):
    """What an array child does: a ranged GET of its own record."""
    specs = _specs()
    s3, written, env = _upload(clients, specs)
    assert fetch_spec(s3, spec_location(env)) == specs[7]
    width = written.record_bytes
    with pytest.raises(JobFailure, match=rf"job spec .*bytes {12 * width}-.*InvalidRange"):
        fetch_spec(s3, spec_location({**env, "AWS_BATCH_JOB_ARRAY_INDEX": "12"}))
    assert len(s3.list_objects_v2(Bucket="bucket")["Contents"]) == 1


def test_a_large_spec_object_goes_in_parts_and_each_record_still_checks(clients, calls):
    """Past the threshold the object is sent as a multipart upload (one PUT takes at most
    5 GiB); each child's ranged read still proves its record against SubmitJob's root."""
    s3 = clients.s3
    s3.create_bucket(Bucket="bucket")
    specs = [{**spec, "p": "x" * 4_000_000} for spec in _specs(3)]  # about 12 MB
    small_parts = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    calls.reset()
    written = upload_specs(s3, "bucket", "knot/specs/run/fit-1.jsonl", specs, "fit", small_parts)
    assert calls["s3.CreateMultipartUpload"] == 1 and calls["s3.UploadPart"] == 3
    assert calls["s3.PutObject"] == 0
    env = {
        "KNOT_SPEC_URI": "s3://bucket/knot/specs/run/fit-1.jsonl",
        "KNOT_SPEC_RECORD_BYTES": str(written.record_bytes),
        "KNOT_SPEC_SHA256": written.digest,
    }
    for index in range(3):  # record 1 spans the first two parts
        where = spec_location({**env, "AWS_BATCH_JOB_ARRAY_INDEX": str(index)})
        assert fetch_spec(s3, where) == specs[index]
    calls.reset()
    upload_specs(s3, "bucket", "knot/specs/run/fit-2.jsonl", _specs(), "fit")
    assert calls["s3.PutObject"] == 1 and calls["s3.CreateMultipartUpload"] == 0


def test_a_changed_spec_is_refused_before_anything_runs(clients):
    """Anyone who can write the bucket could change a spec, and params may be pickles: the
    record must match the root that SubmitJob carries."""
    specs = _specs()
    s3, written, env = _upload(clients, specs)
    width = written.record_bytes
    body = bytearray(written.body)
    start = 7 * width + body[7 * width :].index(b'"p":"') + 5
    body[start : start + 1] = b"y"  # one byte of child 7's document
    s3.put_object(Bucket="bucket", Key="knot/specs/run/fit-1.jsonl", Body=bytes(body))
    with pytest.raises(JobFailure, match="failed its integrity check.*nothing was run"):
        fetch_spec(s3, spec_location(env))
    assert fetch_spec(s3, spec_location({**env, "AWS_BATCH_JOB_ARRAY_INDEX": "6"})) == specs[6]


def test_a_record_moved_to_another_slot_is_refused(clients):
    specs = _specs(4)
    s3, written, env = _upload(clients, specs)
    width = written.record_bytes
    records = [written.body[i * width : (i + 1) * width] for i in range(4)]
    swapped = records[1] + records[0] + records[2] + records[3]
    s3.put_object(Bucket="bucket", Key="knot/specs/run/fit-1.jsonl", Body=swapped)
    with pytest.raises(JobFailure, match="integrity check"):
        fetch_spec(s3, spec_location({**env, "AWS_BATCH_JOB_ARRAY_INDEX": "0"}))


def test_a_wrong_digest_is_refused(clients):
    s3, _, env = _upload(clients, _specs())
    with pytest.raises(JobFailure, match="does not match the SHA-256"):
        fetch_spec(s3, spec_location({**env, "KNOT_SPEC_SHA256": "0" * 64}))


def test_input_produced_as_directory_is_marked_directory():
    """Snakemake flags directory() on the producer's output only."""
    job = _job()
    job.input = named(InputFiles, [IOFile("fit/sub-01", rule=None)])
    producer = FakeJob(output=[IOFile(directory("fit/sub-01"), rule=None)])
    job.dag = SimpleNamespace(dependencies={job: {producer: {"fit/sub-01"}}})
    spec = build_spec(job, "run", _uri)
    assert spec["input"]["items"] == [
        {"path": "fit/sub-01", "uri": _uri("fit/sub-01") + "/", "directory": True, "manifest": True}
    ]


def test_a_file_inside_a_checkpoints_directory_is_a_file(tmp_path, monkeypatch):
    """Snakemake's DAG names directory("first/{s}") with s=s1/3/test.txt as the producer of
    first/s1/3/test.txt; the file on this machine (the checkpoint came home) decides."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "first" / "s1" / "3").mkdir(parents=True)
    (tmp_path / "first" / "s1" / "3" / "test.txt").touch()
    job = _job()
    job.input = named(InputFiles, [IOFile("first/s1/3/test.txt", rule=None)])
    producer = FakeJob(output=[IOFile(directory("first/s1/3/test.txt"), rule=None)])
    job.dag = SimpleNamespace(dependencies={job: {producer: {"first/s1/3/test.txt"}}})
    (item,) = build_spec(job, "run", _uri)["input"]["items"]
    assert item["directory"] is False and item["uri"] == _uri("first/s1/3/test.txt")


def test_encoding_keeps_the_order_of_names_and_config():
    """input.keys() and iteration over config follow declaration order, as in Snakemake."""
    job = _job()
    spec = build_spec(job, "run", _uri)
    decoded = json.loads(encode(spec))
    assert list(decoded["input"]["names"]) == ["dwi", "masks"]
    assert list(decoded["params"]["names"]) == ["alpha", "opts"]
    written = config_object({"zeta": 1, "alpha": 2}, "fit")
    assert written is not None and list(json.loads(written.body)) == ["zeta", "alpha"]


def test_params_and_config_of_any_type_reach_the_job_equal_and_typed(clients):
    """Host to S3 to the runtime's namespace: a Path, a numpy scalar, a tuple and a date
    (as YAML configs hold) arrive as they left."""
    params = {"path": Path("/tmp"), "n": np.int64(1), "pair": (1, "a"), "alpha": 0.5}
    config = {"when": datetime.date(2026, 11, 29), "subjects": ["01", "02"]}
    config_written = config_object(config, "fit")
    assert config_written is not None
    ref = config_written.reference("bucket")
    spec = build_spec(_job(params=params), "run", _uri, ref)
    s3, written, env = _upload(clients, [{**spec, "jobid": i} for i in range(8)])
    upload_config(s3, "bucket", config_written, "fit")
    ns = Namespace.from_spec(with_config(s3, fetch_spec(s3, spec_location(env))))
    assert ns.params.path == Path("/tmp") and isinstance(ns.params.path, Path)
    assert ns.params.n == 1 and type(ns.params.n) is np.int64
    assert ns.params.pair == (1, "a") and ns.params.alpha == 0.5
    assert ns.config == config and type(ns.config["when"]) is datetime.date
    assert required_modules(spec["params"]["items"]) == {"numpy"}


def test_a_snakefile_class_as_param_is_refused_naming_it(monkeypatch):
    # A class the Snakefile defines lives in Snakemake's workflow module: patch the real
    # one, so that no stand-in module stays behind for later tests.
    Model = type("Model", (), {"__module__": "snakemake.workflow"})
    monkeypatch.setattr(snakemake.workflow, "Model", Model, raising=False)
    with pytest.raises(RuleError, match=r"Rule 'fit': param 'model' .*Model defined in the"):
        build_spec(_job(params={"model": Model()}), "run", _uri)


def test_absolute_paths_inside_the_working_directory_go_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    workdir = str(Path.cwd())
    assert spec_path(f"{workdir}/results/a.txt") == "results/a.txt"
    assert spec_path("results/a.txt") == "results/a.txt"
    # Outside it (reference data): the absolute name, which the runtime maps.
    assert spec_path("/refs/genome.fa") == "/refs/genome.fa"
    assert spec_path("../refs/genome.fa") == str(Path(workdir).parent / "refs/genome.fa")
    assert spec_path(f"{workdir}-other/x") == f"{workdir}-other/x"  # a sibling, not inside


@pytest.mark.parametrize(
    ("query", "uri"),
    [
        ("s3://b/p/results/a.txt", "s3://b/p/results/a.txt"),
        ("s3://b/p//abs/work/results/a.txt", "s3://b/p/abs/work/results/a.txt"),
        ("s3://b/p/./x/../y", "s3://b/p/y"),
        ("s3://b", "s3://b"),
        ("gs://b//x", "gs://b//x"),
    ],
)
def test_storage_uri_names_the_object_the_s3_plugin_writes(query, uri):
    assert storage_uri(query) == uri


def test_the_snakefiles_shell_prefix_and_suffix_travel_in_the_spec(monkeypatch):
    assert "shell_wrap" not in build_spec(_job(shellcmd="true"), "shell", _uri)
    monkeypatch.setattr(snakemake_shell, "_process_prefix", "set -x; ")
    monkeypatch.setattr(snakemake_shell, "_process_suffix", "; sync")
    spec = build_spec(_job(), "run", _uri)
    assert spec["shell_wrap"] == {"prefix": "set -x; ", "suffix": "; sync"}


def test_touch_outputs_are_marked_and_others_are_not():
    from snakemake.io import touch

    from snakemake_executor_knot.jobs.spec import file_item

    def uri_for(path: str) -> str:
        return f"s3://b/{path}"

    assert file_item(IOFile(touch("done.flag")), uri_for)["touch"] is True
    assert "touch" not in file_item(IOFile("out.txt"), uri_for)


def test_ensured_outputs_carry_what_the_job_checks():
    """ensure() is checked by Snakemake after a job it runs itself; knot's job checks it, so
    the spec carries it (a checksum given as a function is evaluated per job here)."""
    digest = "ab" * 32
    job = fake_job(
        output={
            "kept": ensure("out/a.txt", non_empty=True),
            "summed": ensure("out/b.txt", sha256=lambda wildcards: digest.upper()),
            "plain": "out/c.txt",
        },
        wildcards={"subject": "01"},
    )
    items = build_spec(job, "shell", _uri)["output"]["items"]
    assert items[0]["non_empty"] is True and "checksum" not in items[0]
    assert items[1]["checksum"] == f"sha256:{digest}" and "non_empty" not in items[1]
    assert "non_empty" not in items[2] and "checksum" not in items[2]
