"""The run's config object: one per content, referenced by every spec, where jobs may read
it but never write it, and expiring with the specs."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from types import SimpleNamespace

from snakemake_executor_knot.aws.template.assembly import build_template
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.jobs.config import config_object, rule_config
from snakemake_executor_knot.jobs.spec import build_spec, spec_records
from snakemake_executor_knot.run.adoption import spec_hash

from ..conftest import fake_job

BUCKET = "knot-bucket-abc123"


def _spec(config: dict, jobid: int = 7, sample: str = "s00001") -> dict:
    job = fake_job(
        rule="align",
        jobid=jobid,
        input={"reads": f"data/{sample}.fastq"},
        output=[f"results/{sample}.bam"],
        wildcards={"sample": sample},
        params={"threads": 4},
    )
    written = config_object(config, "align")
    ref = written.reference(BUCKET) if written else None
    return build_spec(job, "run", lambda p: f"s3://{BUCKET}/knot/files/w/{p}", ref)


def sample_sheet(kib: int) -> dict:
    """A config like a sample sheet of about ``kib`` KiB (each row 70 bytes as JSON)."""
    rows = {
        f"sample_{i:05d}": {"fastq": f"/data/run42/lane{i % 8}/sample_{i:05d}_R1.fastq.gz"}
        for i in range(kib * 1024 // 70)
    }
    return {"reference": "/ref/GRCh38.fa", "samples": rows}


def test_the_config_object_is_named_by_its_content_and_holds_the_encoded_config():
    config = {"zeta": 1, "alpha": [1, 2], "when": {"day": 3}}
    written = config_object(config, "align")
    assert written is not None
    assert written.sha256 == hashlib.sha256(written.body).hexdigest()
    assert written.key == f"knot/specs/config/{written.sha256}.json"
    assert json.loads(written.body) == config and list(json.loads(written.body)) == list(config)
    assert written.reference(BUCKET) == {
        "uri": f"s3://{BUCKET}/{written.key}",
        "sha256": written.sha256,
    }
    assert config_object({}, "align") is None  # no object, no GET in the job


def test_jobs_may_read_the_config_object_never_write_it_and_it_expires_with_the_specs():
    written = config_object({"a": 1}, "align")
    assert written is not None
    resources = build_template(KnotConfig())["Resources"]
    policies = {p["PolicyName"]: p for p in resources["JobRole"]["Properties"]["Policies"]}
    statements = policies["knot-job-s3"]["PolicyDocument"]["Statement"]

    def covers(statement: dict) -> bool:
        arns = [r["Fn::Sub"] for r in statement["Resource"] if "Fn::Sub" in r]
        patterns = [arn.replace("${Bucket.Arn}/", "") for arn in arns]
        return any(fnmatch.fnmatchcase(written.key, p) for p in patterns)

    allowed = {a for s in statements if s["Effect"] == "Allow" and covers(s) for a in s["Action"]}
    denied = {a for s in statements if s["Effect"] == "Deny" and covers(s) for a in s["Action"]}
    assert allowed == {"s3:GetObject"}
    assert {"s3:PutObject", "s3:DeleteObject"} <= denied
    rules = resources["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if "ExpirationInDays" in r and written.key.startswith(r["Prefix"])]
    assert [r["Id"] for r in expiring] == ["expire-job-specs"]


def test_the_adoption_hash_follows_the_config_and_only_the_config():
    """The reference holds the config's SHA-256 and no run id: an equal config in a later
    run gives the same spec hash (the job is adopted), a changed one another."""
    first = _spec({"samples": ["a", "b"], "seed": 1})
    again = _spec({"samples": ["a", "b"], "seed": 1}, jobid=99)
    changed = _spec({"samples": ["a", "b"], "seed": 2})
    assert "config" not in first and first["config_ref"] != changed["config_ref"]
    assert spec_hash(first) == spec_hash(again)
    assert spec_hash(first) != spec_hash(changed)


def test_a_large_config_is_not_copied_into_each_record_of_an_array():
    """10,000 jobs and a 43 KiB config: each record holds a reference of about 200 bytes
    instead of the config, so the object is about 16 MiB (its Merkle proofs and documents),
    not 0.39 GiB."""
    config = sample_sheet(43)
    written = config_object(config, "align")
    assert written is not None and 42 * 1024 < len(written.body) < 44 * 1024
    first = _spec(config)
    # The jobs of an array differ in their jobid and wildcards (and paths of equal length).
    specs = [first | {"jobid": i, "wildcards": {"items": [f"s{i:05d}"]}} for i in range(10_000)]
    body = spec_records(specs).body
    assert written.body not in body and len(body) < 20 * 1024 * 1024
    assert len(json.dumps(first["config_ref"])) < 300


def test_a_module_rule_sees_the_modules_own_config():
    """Snakemake runs a module's rules with the module's globals, whose config is the
    module's `config:`; other rules see the workflow's."""
    workflow = SimpleNamespace(config={"main": 1})
    assert rule_config(SimpleNamespace(workflow=workflow)) == {"main": 1}
    main = SimpleNamespace(workflow=workflow, module_globals={"config": workflow.config})
    assert rule_config(main) == {"main": 1}
    module = SimpleNamespace(workflow=workflow, module_globals={"config": ["AAA"]})
    assert rule_config(module) == ["AAA"]
    assert config_object(["AAA"], "m").body == b'["AAA"]'
