"""Bad input stops `snakemake --executor knot` with a message naming the rule and the fix,
before any AWS resource is created: afterwards the account holds no stack."""

from __future__ import annotations

import os

import boto3
import pytest
from moto.server import ThreadedMotoServer

from .e2e.helpers import snakemake

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
        ["Rule 'make'", "no compute class has GPU", '--knot-compute-classes "gpu=g5,g4dn"'],
    ),
    "unknown_compute_class": (
        "rule make:\n    output: 'out.txt'\n    resources: knot_class='huge'\n"
        "    run:\n        open(output[0], 'w').write('x')\n",
        ["Rule 'make'", "knot_class='huge' names no compute class", "default"],
    ),
    "disk_beyond_the_volume": (
        "rule make:\n    output: 'out.txt'\n    resources: disk_mb=40000\n"
        "    run:\n        open(output[0], 'w').write('x')\n",
        ["Rule 'make'", "disk_mb=40000 exceeds the 30 GiB", "bigdisk=m6i:500GB"],
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
    "group_of_two_container_images": (
        "rule mid:\n    output: 'mid.txt'\n    group: 'g'\n    container: 'python:3.11-slim'\n"
        "    shell: 'echo x > {output}'\n\n"
        "rule make:\n    input: 'mid.txt'\n    output: 'out.txt'\n    group: 'g'\n"
        "    container: 'debian:bookworm'\n    shell: 'cp {input} {output}'\n",
        ["Group 'g' (rules make, mid)", "python:3.11-slim", "debian:bookworm", "container:"],
    ),
    # Snakemake puts a service and its readers in one group job; knot runs those in turn
    # (a pipe's writer and reader, it runs at once).
    "service_between_rules": (
        "rule serve:\n    output: service('socket')\n    shell: 'sleep 1; touch {output}'\n\n"
        "rule use:\n    input: 'socket'\n    output: 'out.txt'\n"
        "    shell: 'echo x > {output}'\n",
        ["rule 'serve' writes service() output socket", "one at a time"],
    ),
    # No wrapper prefix is reachable here: the default (GitHub) is not.
    "wrapper_not_fetched": (
        "rule make:\n    output: 'out.txt'\n    wrapper: 'v1.0.0/bio/samtools/sort'\n",
        ["Rule 'make'", "cannot fetch its wrapper 'v1.0.0/bio/samtools/sort'", "--wrapper-prefix"],
    ),
    "r_script": (
        "rule make:\n    output: 'out.txt'\n    script: 'make.R'\n",
        ["Rule 'make' runs an R script (make.R)", "Rscript", "container:", "localrules"],
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


def _client(service: str, endpoint: str):
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


def test_edit_notebook_is_snakemakes_own_error_before_anything_is_created(tmp_path, moto_endpoint):
    # Editing needs a Jupyter server on this machine; Snakemake allows it only locally.
    snakefile = "rule make:\n    output: 'out.txt'\n    notebook: 'n.py.ipynb'\n"
    result = _run(tmp_path, moto_endpoint, snakefile, args=("--edit-notebook", "out.txt"))
    assert result.returncode != 0
    assert "notebook edit mode is only allowed with local execution" in result.stdout
    assert _stacks(moto_endpoint) == []


SETTINGS = {
    "aws_tag": (["--knot-tags", "Aws:owner=me"], "--knot-tags: the key 'Aws:owner'"),
    "storage_bucket": (
        ["--default-storage-provider", "s3", "--default-storage-prefix", "s3://knot..results/x"],
        "--default-storage-prefix",
    ),
    "submit_rate": (["--knot-submit-rate", "500"], "--knot-submit-rate"),
    "compute_classes_grammar": (
        ["--knot-compute-classes", "gpu=g5; bigdisk=m6i:500TB"],
        "--knot-compute-classes: '500TB' is not a volume size",
    ),
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


CLASS_CASES = {
    "cpu_rule_in_a_gpu_class": (
        "    resources: knot_class='gpu'\n",
        ["--knot-compute-classes", "gpu=g5"],
        ["Rule 'make' asks for no GPU", "class 'gpu' has only GPU instance types"],
    ),
}


@pytest.mark.parametrize("case", sorted(CLASS_CASES))
def test_a_rule_its_class_cannot_hold_fails_before_anything_is_created(
    case, tmp_path, moto_endpoint
):
    resources, args, expected = CLASS_CASES[case]
    snakefile = (
        f"rule make:\n    output: 'out.txt'\n{resources}"
        "    run:\n        open(output[0], 'w').write('x')\n"
    )
    before = {b["Name"] for b in _buckets(moto_endpoint)}
    result = _run(tmp_path, moto_endpoint, snakefile, args=args)
    assert result.returncode != 0
    for text in expected:
        assert text in result.stdout, result.stdout[-3000:]
    assert _stacks(moto_endpoint) == []
    assert {b["Name"] for b in _buckets(moto_endpoint)} == before


def _one_rule(output: str, input_: str | None = None, rule: str = "make") -> str:
    """A Snakefile whose one rule writes ``output`` (from ``input_``)."""
    given = f"    input: {input_!r}\n" if input_ else ""
    return (
        f"rule all:\n    input: {output!r}\n\nrule {rule}:\n{given}    output: {output!r}\n"
        "    run:\n        open(output[0], 'w').write('x')\n"
    )


def _outside_output(tmp_path) -> tuple[str, list[str]]:
    expected = ["Rule 'make'", "'../outside.txt' lies outside the working directory"]
    return _one_rule("../outside.txt"), expected


def _absolute_output(tmp_path) -> tuple[str, list[str]]:
    target = str(tmp_path.parent / "absolute-out.txt")
    return _one_rule(target), ["Rule 'make'", "lies outside the working directory"]


def _non_utf8_name(tmp_path) -> tuple[str, list[str]]:
    """Inside a directory input: Snakemake itself fails with a traceback on an input or
    output named so (its lock and persistence files encode the names) before knot is asked
    anything, but it never looks inside a directory."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / os.fsdecode(b"sub-\xff.txt")).write_text("x")
    expected = ["Rule 'count'", "data/sub-\\xff.txt' is not valid UTF-8"]
    return _one_rule("out.txt", "data", rule="count"), expected


def _link_out_of_directory_input(tmp_path) -> tuple[str, list[str]]:
    (tmp_path.parent / "secret.txt").write_text("not for the job")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    (tmp_path / "data" / "leak.txt").symlink_to(tmp_path.parent / "secret.txt")
    expected = ["Rule 'make'", "leak.txt", "outside both the directory and the working directory"]
    return _one_rule("out.txt", "data"), expected


def _manifest_name(tmp_path) -> tuple[str, list[str]]:
    """knot writes ``<directory>.knot-manifest.json`` next to a directory() output; a file
    of the workflow's own named so would be overwritten, or overwrite the manifest."""
    expected = ["Rule 'make'", "'res/tree.knot-manifest.json' ends in '.knot-manifest.json'"]
    return _one_rule("res/tree.knot-manifest.json"), expected


PATH_CASES = {
    "file_name_of_a_manifest": _manifest_name,
    "output_outside_by_dot_dot": _outside_output,
    "output_outside_by_absolute_path": _absolute_output,
    "file_name_not_utf8": _non_utf8_name,
    "link_out_of_directory_input": _link_out_of_directory_input,
}


@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_bad_path_fails_before_anything_is_created(case, tmp_path, moto_endpoint):
    work = tmp_path / "work"
    work.mkdir()
    snakefile, expected = PATH_CASES[case](work)
    before = {b["Name"] for b in _buckets(moto_endpoint)}
    (work / "Snakefile").write_text(snakefile)
    result = snakemake(
        work,
        "--executor", "knot", "--jobs", "1", "--knot-endpoint-url", moto_endpoint,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"},
        timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    for text in expected:
        assert text in result.stdout, result.stdout[-3000:]
    assert _stacks(moto_endpoint) == []
    assert {b["Name"] for b in _buckets(moto_endpoint)} == before
    # Nothing was written next to the working directory either.
    assert {p.name for p in tmp_path.iterdir()} - {"secret.txt"} == {"work"}


CONDA_RULE = (
    "rule make:\n    output: 'out.txt'\n    conda: {env}\n    shell: 'echo x > {{output}}'\n"
)
CONDA_CASES = {
    "not_yaml": ("'envs/bad.yaml'", "channels: [a\n", ["not valid YAML", "envs/bad.yaml"]),
    "no_such_package": (
        "'envs/bad.yaml'",
        "channels: ['@CHANNEL@']\ndependencies: [no-such-package]\n",
        ["cannot solve the conda environment 'envs/bad.yaml'", "no-such-package"],
    ),
    "unsatisfiable": (
        "'envs/bad.yaml'",
        "channels: ['@CHANNEL@']\ndependencies: ['knot-greet >=9']\n",
        ["cannot solve", "Check the package names and versions"],
    ),
    "pip_without_pip": (
        "'envs/bad.yaml'",
        "channels: ['@CHANNEL@']\ndependencies: [knot-greet, {pip: [six]}]\n",
        ["'envs/bad.yaml' has a 'pip:' section", "Add 'pip'"],
    ),
    "function": ("lambda wildcards: 'envs/bad.yaml'", "", ["is given as a function"]),
    "named": ("'myenv'", "", ["names an environment on this machine", "conda env export"]),
}


@pytest.fixture(scope="module")
def test_channel(tmp_path_factory) -> str:
    from tests.condachannel import make_channel

    return make_channel(tmp_path_factory.mktemp("channel"))


@pytest.mark.parametrize("case", sorted(CONDA_CASES))
def test_bad_conda_environment_fails_before_anything_is_created(
    case, tmp_path, moto_endpoint, test_channel
):
    env, text, expected = CONDA_CASES[case]
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "bad.yaml").write_text(text.replace("@CHANNEL@", test_channel))
    args = ("--software-deployment-method", "conda")
    result = _run(tmp_path, moto_endpoint, CONDA_RULE.format(env=env), args=args)
    assert result.returncode != 0
    for text in [*expected, "Rule 'make'"]:
        assert text in result.stdout, result.stdout[-3000:]
    assert _stacks(moto_endpoint) == []
