"""Bad input stops `snakemake --executor knot` with a message naming the rule and the fix,
before any AWS resource is created: afterwards the account holds no stack."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

from .e2e_helpers import snakemake

HEADER = "rule all:\n    input: 'out.txt'\n\n"
CASES = {
    "zero_memory": (
        "rule make:\n    output: 'out.txt'\n    resources: mem_mb=0\n"
        "    run:\n        open(output[0], 'w').write('x')\n",
        ["Rule 'make'", "mem_mb"],
    ),
    "gpu_without_gpu_instances": (
        "rule make:\n    output: 'out.txt'\n    resources: gpu=1\n"
        "    run:\n        open(output[0], 'w').write('x')\n",
        ["Rule 'make'", "--knot-instance-types"],
    ),
    "open_file_global": (
        "HANDLE = open('Snakefile')\n\n"
        "rule make:\n    output: 'out.txt'\n"
        "    run:\n        open(output[0], 'w').write(HANDLE.read())\n",
        ["'make'", "HANDLE"],
    ),
    # Imported inside the block: a top-level import would already fail in Snakemake.
    "unresolvable_import": (
        "rule make:\n    output: 'out.txt'\n"
        "    run:\n        import not_a_real_package_xyz\n"
        "        not_a_real_package_xyz.go(output[0])\n",
        ["'make'", "not_a_real_package_xyz", "knot_packages"],
    ),
    "wrapper_rule": (
        "rule make:\n    output: 'out.txt'\n    wrapper: 'v1.0.0/bio/samtools/sort'\n",
        ["'make'", "localrules"],
    ),
    "r_script": (
        "rule make:\n    output: 'out.txt'\n    script: 'make.R'\n",
        ["'make'", "localrules"],
    ),
}


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _run(tmp_path, endpoint, snakefile, env=None, args=()):
    (tmp_path / "Snakefile").write_text(HEADER + snakefile)
    (tmp_path / "make.R").write_text("cat('x')\n")
    return snakemake(
        tmp_path,
        "--executor", "knot", "--jobs", "1", "--knot-endpoint-url", endpoint, *args,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1", **(env or {})},
        timeout=300,
    )  # fmt: skip


def _client(service, endpoint):
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def _buckets(endpoint):
    return _client("s3", endpoint).list_buckets()["Buckets"]


def _stacks(endpoint):
    return _client("cloudformation", endpoint).describe_stacks()["Stacks"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_rule_fails_before_anything_is_created(case, tmp_path, moto_endpoint):
    snakefile, expected = CASES[case]
    result = _run(tmp_path, moto_endpoint, snakefile)
    assert result.returncode != 0
    for text in expected:
        assert text in result.stdout, result.stdout[-3000:]
    assert _stacks(moto_endpoint) == []


def test_unreachable_docker_fails_before_anything_is_created(tmp_path, moto_endpoint):
    snakefile = "rule make:\n    output: 'out.txt'\n    run:\n        open(output[0], 'w')\n"
    result = _run(tmp_path, moto_endpoint, snakefile, env={"DOCKER_HOST": "unix:///nonexistent"})
    assert result.returncode != 0
    assert "No Docker engine is reachable" in result.stdout, result.stdout[-3000:]
    assert _stacks(moto_endpoint) == []


SETTINGS = {
    "aws_tag": (["--knot-tags", "Aws:owner=me"], "--knot-tags: the key 'Aws:owner'"),
    "storage_bucket": (
        ["--default-storage-provider", "s3", "--default-storage-prefix", "s3://knot..results/x"],
        "--default-storage-prefix",
    ),
    "submit_rate": (["--knot-submit-rate", "500"], "--knot-submit-rate"),
}


@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_bad_setting_fails_before_anything_is_created(case, tmp_path, moto_endpoint):
    args, expected = SETTINGS[case]
    snakefile = "rule make:\n    output: 'out.txt'\n    run:\n        open(output[0], 'w')\n"
    # moto's backends are per process: other tests' servers may have left buckets.
    before = {b["Name"] for b in _buckets(moto_endpoint)}
    result = _run(tmp_path, moto_endpoint, snakefile, args=args)
    assert result.returncode != 0
    assert expected in result.stdout, result.stdout[-3000:]
    assert _stacks(moto_endpoint) == []
    assert {b["Name"] for b in _buckets(moto_endpoint)} == before
