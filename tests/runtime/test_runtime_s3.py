"""The runtime end to end against a moto S3 server, in a subprocess without Snakemake.

Each test copies the runtime package into a temporary lib folder as ``knot_runtime`` (as the
image does), writes a spec (and a ``knot_rule.py`` or script), and runs the runtime with
``snakemake`` blocked in ``sys.modules``, so an accidental Snakemake import fails the job.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

import snakemake_executor_knot.runtime as runtime_package
from snakemake_executor_knot.jobs.config import config_object
from snakemake_executor_knot.jobs.spec import file_item, spec_records
from snakemake_executor_knot.runtime.contract import SPEC_VERSION

BUCKET = "knot-runtime-tests"
REGION = "us-east-1"
LAUNCH = (
    "import sys; sys.modules['snakemake'] = None; import runpy; "
    "runpy.run_module('knot_runtime', run_name='__main__', alter_sys=True)"
)


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(endpoint):
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix per test, so tests share the bucket but not objects."""
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def lib(tmp_path) -> Path:
    folder = tmp_path / "lib"
    source = Path(runtime_package.__file__).parent
    shutil.copytree(source, folder / "knot_runtime", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def uri(prefix: str, key: str) -> str:
    return f"s3://{BUCKET}/{prefix}/{key}"


def item(path: str, prefix: str, directory: bool = False) -> dict:
    key = path + ("/" if directory else "")
    return {"path": path, "uri": uri(prefix, key), "directory": directory}


def section(items: list, names: dict | None = None) -> dict:
    return {"items": items, "names": names or {}}


def make_spec(rule: str, kind: str, **parts) -> dict:
    doc = {
        "version": SPEC_VERSION,
        "rule": rule,
        "kind": kind,
        "jobid": 7,
        "input": section([]),
        "output": section([]),
        "log": section([]),
        "benchmark": None,
        "params": section([]),
        "wildcards": section([]),
        "resources": section([1, 1000], {"_cores": [0, None], "mem_mb": [1, None]}),
        "threads": 2,
    }
    return doc | parts


def by_reference(s3, prefix: str, doc: dict) -> dict:
    """``doc`` as the executor writes it: its ``config`` (if any) in an object of its own,
    which the spec references by its SHA-256."""
    doc = dict(doc)
    written = config_object(doc.pop("config", {}), doc["rule"])
    if written is None:
        return doc
    key = f"{prefix}/{written.key}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=written.body)
    return doc | {"config_ref": {"uri": f"s3://{BUCKET}/{key}", "sha256": written.sha256}}


def put_spec(s3, prefix: str, doc: dict, name: str = "job-0.json") -> str:
    """Write ``doc`` as the executor does (one record, the config by reference); its
    digest, for KNOT_SPEC_SHA256."""
    written = spec_records([by_reference(s3, prefix, doc)])
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/specs/{name}", Body=written.body)
    return written.digest


def run_group(endpoint, lib, work, prefix, digest: str, members: Path, plain=()):
    """Run a group spec with its members' rule modules under ``members``; ``plain`` are
    members that have none (shell rules, rules with no action)."""
    for rule in plain:
        (members / rule).mkdir(parents=True, exist_ok=True)
    return run_runtime(
        endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest, KNOT_MEMBERS_DIR=str(members)
    )


def write_rule(lib: Path, body: str) -> None:
    (lib / "knot_rule.py").write_text(textwrap.dedent(body))


def run_runtime(endpoint, lib, work, prefix, spec_name="job-0.json", **extra):
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(lib),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(work.parent / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(work.parent / "no-aws-credentials"),
        "KNOT_SPEC_URI": uri(prefix, f"specs/{spec_name}"),
    } | extra
    return subprocess.run(
        [sys.executable, "-c", LAUNCH],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def read(s3, prefix: str, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=f"{prefix}/{key}")["Body"].read()


def exists(s3, prefix: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=f"{prefix}/{key}")
    except ClientError:
        return False
    return True


def assert_sha256(s3, prefix: str, key: str, data: bytes) -> None:
    head = s3.head_object(Bucket=BUCKET, Key=f"{prefix}/{key}", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()


def upload_inputs(s3, prefix: str, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=data)


RUN_RULE = """
    from knot_runtime.prelude import *
    import json

    def shout(text):
        return text.upper()

    def knot_run(input, output, params, wildcards, threads, resources, log, rule, jobid):
        shell("cat {input.a:q} {input.refs}/x.txt {input.refs}/sub/y.txt > {output.merged:q}")
        shell("echo merged {wildcards.sample} > {log:q}")
        os.makedirs(output.tree)
        Path(output.tree, "n.txt").write_text(shout(wildcards.sample))
        try:
            import snakemake  # noqa: F401
            importable = True
        except ImportError:
            importable = False
        with open(output.meta, "w") as handle:
            json.dump({
                "rule": rule, "jobid": jobid, "alpha": params.alpha, "threads": threads,
                "mem_mb": resources.mem_mb, "greeting": config["greeting"],
                "inputs": len(input), "expanded": expand("{s}.txt", s=[wildcards.sample, "b"]),
                "snakemake_importable": importable,
            }, handle, sort_keys=True)
"""


def run_spec(prefix: str) -> dict:
    return make_spec(
        "merge",
        "run",
        input=section(
            [item("data/a.txt", prefix), item("data/refs", prefix, directory=True)],
            {"a": [0, None], "refs": [1, None]},
        ),
        output=section(
            [
                item("res/merged out.txt", prefix),
                item("res/meta.json", prefix),
                item("res/tree", prefix, directory=True),
            ],
            {"merged": [0, None], "meta": [1, None], "tree": [2, None]},
        ),
        log=section([item("logs/merge.log", prefix)]),
        benchmark={"path": "bench/merge.tsv", "uri": uri(prefix, "bench/merge.tsv")},
        params=section([0.5], {"alpha": [0, None]}),
        wildcards=section(["s01"], {"sample": [0, None]}),
        config={"greeting": "hi"},
    )


def test_run_job_round_trip(s3, endpoint, lib, work, prefix):
    upload_inputs(
        s3,
        prefix,
        {"data/a.txt": b"A\n", "data/refs/x.txt": b"X\n", "data/refs/sub/y.txt": b"Y\n"},
    )
    digest = put_spec(s3, prefix, run_spec(prefix))
    write_rule(lib, RUN_RULE)

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "res/merged out.txt") == b"A\nX\nY\n"
    assert_sha256(s3, prefix, "res/merged out.txt", b"A\nX\nY\n")
    meta = json.loads(read(s3, prefix, "res/meta.json"))
    assert meta == {
        "rule": "merge", "jobid": 7, "alpha": 0.5, "threads": 2, "mem_mb": 1000,
        "greeting": "hi", "inputs": 2, "expanded": ["s01.txt", "b.txt"],
        "snakemake_importable": False,
    }  # fmt: skip
    assert read(s3, prefix, "res/tree/n.txt") == b"S01"
    assert_sha256(s3, prefix, "res/tree/n.txt", b"S01")
    assert read(s3, prefix, "res/tree/.snakemake_timestamp") == b""  # as Snakemake's
    assert read(s3, prefix, "logs/merge.log") == b"merged s01\n"
    bench = read(s3, prefix, "bench/merge.tsv").decode().splitlines()
    assert bench[0].split("\t")[:3] == ["s", "h:m:s", "max_rss"] and len(bench) == 2
    assert "downloading 2 inputs (3 files)" in done.stderr
    assert "uploading 3 outputs (4 files), 1 logs, the benchmark" in done.stderr


SHELL_COMMAND = (
    "tr a-z A-Z < {input.txt:q} > {output[0]:q}; "
    "echo {wildcards.sample} {params.n} {config[tag]} {resources.mem_mb} {rule} >> {output[0]:q}"
)


def shell_spec(prefix: str, sample: str, command: str = SHELL_COMMAND) -> dict:
    return make_spec(
        "upper",
        "shell",
        input=section([item("in/t.txt", prefix)], {"txt": [0, None]}),
        output=section([item(f"out/{sample}.txt", prefix)]),
        params=section([3], {"n": [0, None]}),
        wildcards=section([sample], {"sample": [0, None]}),
        config={"tag": "v1"},
        shell={"command": command, "executable": "bash"},
    )


def test_shell_job(s3, endpoint, lib, work, prefix):
    upload_inputs(s3, prefix, {"in/t.txt": b"hello\n"})
    digest = put_spec(s3, prefix, shell_spec(prefix, "s1"))

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "out/s1.txt") == b"HELLO\ns1 3 v1 1000 upper\n"


@pytest.mark.parametrize("command", [SHELL_COMMAND, "false"])
def test_a_log_the_rule_did_not_write_comes_back_empty(s3, endpoint, lib, work, prefix, command):
    """As Snakemake does after a job, succeeded or failed (DAG.handle_log)."""
    upload_inputs(s3, prefix, {"in/t.txt": b"hello\n"})
    spec = shell_spec(prefix, "s1", command)
    spec["log"] = section([item("logs/upper.log", prefix)])
    digest = put_spec(s3, prefix, spec)

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == (0 if command == SHELL_COMMAND else 1), done.stderr
    log = read(s3, prefix, "logs/upper.log")
    assert log == b"" if command == SHELL_COMMAND else b"FAILED" in log


def test_the_config_comes_from_its_object_not_from_the_spec(s3, endpoint, lib, work, prefix):
    """The spec holds only the reference; a config the spec itself carries is never used."""
    upload_inputs(s3, prefix, {"in/t.txt": b"hello\n"})
    doc = by_reference(s3, prefix, shell_spec(prefix, "s1"))
    assert "config" not in doc and doc["config_ref"]["sha256"]
    written = spec_records([doc | {"config": {"tag": "inline"}}])
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/specs/job-0.json", Body=written.body)
    digest = written.digest

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "out/s1.txt") == b"HELLO\ns1 3 v1 1000 upper\n"


def test_a_modules_own_list_config_reaches_the_command(s3, endpoint, lib, work, prefix):
    """`module m: config: ["AAA"]`: its rules see that list as config, formatted as
    Snakemake formats a list in a command (Snakemake's test_module_checkpoint)."""
    spec = shell_spec(prefix, "s1", "echo {config} > {output:q}")
    spec["config"] = ["AAA"]
    digest = put_spec(s3, prefix, spec)
    upload_inputs(s3, prefix, {"in/t.txt": b"hello\n"})

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "out/s1.txt") == b"AAA\n"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("changed", "config .* failed its integrity check: its SHA-256 is [0-9a-f]{64}, but"),
        ("missing", "could not read the workflow's config .*NoSuchKey"),
    ],
)
def test_a_changed_or_missing_config_object_fails_the_job_before_the_rule_runs(
    s3, endpoint, lib, work, prefix, tamper, message
):
    """Hostile input: a config object that is not the one the host wrote (it may hold
    pickles) fails the job with a clear message; the rule never runs with another config."""
    upload_inputs(s3, prefix, {"in/t.txt": b"hello\n"})
    doc = by_reference(s3, prefix, shell_spec(prefix, "s1"))
    digest = put_spec(s3, prefix, doc)
    key = doc["config_ref"]["uri"].removeprefix(f"s3://{BUCKET}/")
    if tamper == "changed":
        s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"tag":"v2"}')
    else:
        s3.delete_object(Bucket=BUCKET, Key=key)

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    assert re.search(message, done.stderr), done.stderr
    assert "running (shell)" not in done.stderr
    assert not exists(s3, prefix, "out/s1.txt")
    assert usage_of(s3, prefix, "job-0.json")["exit_status"] == 1


def test_shell_job_failing_command(s3, endpoint, lib, work, prefix):
    upload_inputs(s3, prefix, {"in/t.txt": b"hello\n"})
    digest = put_spec(s3, prefix, shell_spec(prefix, "s1", "false | cat > {output:q}"))

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    assert "CalledProcessError" in done.stderr and "pipefail" in done.stderr
    assert not exists(s3, prefix, "out/s1.txt")


def test_array_index_selects_spec(s3, endpoint, lib, work, prefix):
    upload_inputs(s3, prefix, {"in/t.txt": b"abc\n"})
    docs = [shell_spec(prefix, "first"), shell_spec(prefix, "second")]
    written = spec_records([by_reference(s3, prefix, doc) for doc in docs])
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/specs/array.jsonl", Body=written.body)

    done = run_runtime(
        endpoint, lib, work, prefix, "array.jsonl",
        KNOT_SPEC_RECORD_BYTES=str(written.record_bytes), AWS_BATCH_JOB_ARRAY_INDEX="1",
        KNOT_SPEC_SHA256=written.digest,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "out/second.txt") == b"ABC\nsecond 3 v1 1000 upper\n"
    assert not exists(s3, prefix, "out/first.txt")


SCRIPT = """
    import json
    from helper_next_to_script import twice
    from snakemake.script import snakemake as same_object  # Snakemake's editor-support idiom
    from snakemake.shell import shell as same_shell

    assert same_object is snakemake and same_shell is shell

    lines = sum(1 for _ in open(snakemake.input[0]))
    shell("echo counted {snakemake.wildcards.sample}" + snakemake.log_fmt_shell())
    with open(snakemake.output.counts, "w") as handle:
        json.dump({
            "lines": twice(lines), "rule": snakemake.rule, "threads": snakemake.threads,
            "p": snakemake.params.p, "c": snakemake.config["c"], "name": __name__,
            "real_file": open(__real_file__).read() == open(__file__).read()
            and __real_file__.split("/")[-3:-1] == [".snakemake", "scripts"],
        }, handle, sort_keys=True)
"""


def test_script_job(s3, endpoint, lib, work, prefix, tmp_path):
    rule_dir = tmp_path / "rule"
    (rule_dir / "scripts").mkdir(parents=True)
    (rule_dir / "scripts" / "count.py").write_text(textwrap.dedent(SCRIPT))
    (rule_dir / "scripts" / "helper_next_to_script.py").write_text(
        "def twice(n):\n    return 2 * n\n"
    )
    upload_inputs(s3, prefix, {"in/lines.txt": b"1\n2\n3\n"})
    doc = make_spec(
        "count",
        "script",
        input=section([item("in/lines.txt", prefix)]),
        output=section([item("out/count.json", prefix)], {"counts": [0, None]}),
        log=section([item("logs/count.log", prefix)]),
        params=section(["pv"], {"p": [0, None]}),
        wildcards=section(["s9"], {"sample": [0, None]}),
        config={"c": [1, 2]},
        script={"path": "scripts/count.py"},
    )
    digest = put_spec(s3, prefix, doc)

    done = run_runtime(
        endpoint, lib, work, prefix, KNOT_RULE_DIR=str(rule_dir), KNOT_SPEC_SHA256=digest
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(read(s3, prefix, "out/count.json")) == {
        "lines": 6, "rule": "count", "threads": 2, "p": "pv", "c": [1, 2], "name": "__main__",
        "real_file": True,
    }  # fmt: skip
    assert read(s3, prefix, "logs/count.log") == b"counted s9\n"


def two_output_spec(prefix: str) -> dict:
    return make_spec(
        "pair",
        "run",
        output=section([item("out/one.txt", prefix), item("out/two.txt", prefix)]),
        log=section([item("logs/pair.log", prefix)]),
        benchmark={"path": "bench/pair.tsv", "uri": uri(prefix, "bench/pair.tsv")},
    )


def test_missing_output_fails_and_names_it(s3, endpoint, lib, work, prefix):
    digest = put_spec(s3, prefix, two_output_spec(prefix))
    write_rule(
        lib,
        """
        from knot_runtime.prelude import *

        def knot_run(input, output, params, wildcards, threads, resources, log, rule, jobid):
            Path(output[0]).write_text("one")
        """,
    )

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    assert "out/two.txt (missing)" in done.stderr
    assert "rule pair, jobid 7" in done.stderr
    assert not exists(s3, prefix, "out/one.txt")  # no partial outputs
    assert not exists(s3, prefix, "bench/pair.tsv")
    assert b"out/two.txt (missing)" in read(s3, prefix, "logs/pair.log")


def test_exception_uploads_log_not_outputs(s3, endpoint, lib, work, prefix):
    digest = put_spec(s3, prefix, two_output_spec(prefix))
    write_rule(
        lib,
        """
        from knot_runtime.prelude import *

        def knot_run(input, output, params, wildcards, threads, resources, log, rule, jobid):
            Path(output[0]).write_text("one")
            Path(output[1]).write_text("two")
            Path(log[0]).write_text("before failing\\n")
            raise ValueError(f"boom {jobid}")
        """,
    )

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    assert "knot: rule pair, jobid 7: FAILED: ValueError: boom 7" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert 'knot_rule.py", line 8, in knot_run' in done.stderr
    # The traceback starts in the user's code, not in the runtime's frames.
    assert "run_user_code" not in done.stderr
    log = read(s3, prefix, "logs/pair.log").decode()
    assert log.startswith("before failing\n")
    assert "Traceback" in log and "ValueError: boom 7" in log
    assert not exists(s3, prefix, "out/one.txt") and not exists(s3, prefix, "out/two.txt")


def test_missing_input_fails_naming_it(s3, endpoint, lib, work, prefix):
    doc = shell_spec(prefix, "s1")
    digest = put_spec(s3, prefix, doc)

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    assert f"could not download 1 of 1 files:\n  {uri(prefix, 'in/t.txt')}" in done.stderr
    assert not exists(s3, prefix, "out/s1.txt")


def test_missing_spec_fails_clearly(endpoint, lib, work, prefix):
    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256="0" * 64)

    assert done.returncode == 1
    assert f"could not read the job spec {uri(prefix, 'specs/job-0.json')}" in done.stderr


def test_spec_path_outside_workdir_fails_before_writing(s3, endpoint, lib, work, prefix):
    doc = shell_spec(prefix, "s1", command="echo hi > {output[0]:q}")
    doc["output"] = section([item("../escape.txt", prefix)])
    digest = put_spec(s3, prefix, doc)
    upload_inputs(s3, prefix, {"in/t.txt": b"t"})

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    assert "the job spec is unsafe: refusing the output path '../escape.txt'" in done.stderr
    assert sorted(p.name for p in work.parent.iterdir()) == ["lib", "work"]
    assert list(work.iterdir()) == []


def test_planted_key_in_directory_input_fails_the_job(s3, endpoint, lib, work, prefix):
    upload_inputs(s3, prefix, {"data/refs/x.txt": b"X", "data/refs/../../../evil": b"evil"})
    doc = shell_spec(prefix, "s1", command="ls {input[0]} > {output[0]:q}")
    doc["input"] = section([item("data/refs", prefix, directory=True)])
    digest = put_spec(s3, prefix, doc)

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    assert "refusing the key" in done.stderr and "'..' part" in done.stderr
    assert sorted(p.name for p in work.parent.iterdir()) == ["lib", "work"]
    assert not exists(s3, prefix, "out/s1.txt")


def test_directory_output_gets_a_manifest(s3, endpoint, lib, work, prefix):
    upload_inputs(s3, prefix, {"in/t.txt": b"t", "res/tree/stale.txt": b"earlier run"})
    doc = shell_spec(prefix, "s1", command="mkdir -p {output[0]}/s && echo n > {output[0]}/s/n.txt")
    doc["output"] = section([item("res/tree", prefix, directory=True) | {"manifest": True}])
    digest = put_spec(s3, prefix, doc)

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 0, done.stderr
    listed = json.loads(read(s3, prefix, "res/tree.knot-manifest.json"))
    digest, empty = hashlib.sha256(b"n\n").hexdigest(), hashlib.sha256(b"").hexdigest()
    assert listed == {
        "version": 1,
        "files": [
            {"name": ".snakemake_timestamp", "size": 0, "sha256": empty},  # as Snakemake's
            {"name": "s/n.txt", "size": 2, "sha256": digest},
        ],
    }


class StorageDirectory(str):
    """A storage-mode directory() as Snakemake hands it to jobs/spec.py: its local path,
    and the query of its S3 storage object."""

    is_directory = is_storage = True

    def __new__(cls, path: str, query: str):
        made = super().__new__(cls, path)
        made.storage_object = SimpleNamespace(query=query)
        return made


def test_retried_storage_directory_holds_only_the_last_attempts_files(
    s3, endpoint, lib, work, prefix, tmp_path
):
    """A spot reclaim ended attempt 1 mid-upload: one of its files is under the user's
    prefix, another on its disk. Attempt 2 succeeds; a downstream job reading the directory
    sees only attempt 2's files (the manifest), not the prefix's whole listing."""
    local = ".snakemake/storage/s3/tree"
    tree = StorageDirectory(local, uri(prefix, "study/tree"))
    made, read_back = file_item(tree, uri_for=None), file_item(tree, uri_for=None)
    upload_inputs(s3, prefix, {"in/t.txt": b"t", "study/tree/attempt-1.txt": b"partial"})
    (work / local).mkdir(parents=True)
    (work / local / "attempt-1-disk.txt").write_text("left on disk")
    producer = shell_spec(
        prefix, "s1", command="mkdir -p {output[0]} && echo 2 > {output[0]}/a2.txt"
    )
    producer["output"] = section([made])
    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=put_spec(s3, prefix, producer))
    assert done.returncode == 0, done.stderr

    consumer = shell_spec(prefix, "s2", command="ls {input[0]} > {output[0]:q}")
    consumer["input"] = section([read_back])
    digest = put_spec(s3, prefix, consumer, "job-1.json")
    (tmp_path / "reader").mkdir()
    done = run_runtime(
        endpoint, lib, tmp_path / "reader", prefix, "job-1.json", KNOT_SPEC_SHA256=digest
    )
    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "out/s2.txt") == b"a2.txt\n"


def test_storage_directory_knot_did_not_write_is_read_whole(s3, endpoint, lib, work, prefix):
    """The user's own data under the storage prefix has no manifest: every file counts."""
    upload_inputs(s3, prefix, {"in/t.txt": b"t", "mine/x.txt": b"x", "mine/sub/y.txt": b"y"})
    mine = file_item(StorageDirectory("mine", uri(prefix, "mine")), uri_for=None)
    doc = shell_spec(
        prefix, "s1", command="cd {input[0]} && find . -type f | sort > ../{output[0]:q}"
    )
    doc["input"] = section([mine])
    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=put_spec(s3, prefix, doc))
    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "out/s1.txt") == b"./sub/y.txt\n./x.txt\n"


def usage_of(s3, prefix: str, spec_name: str, index: int = 0) -> dict:
    return json.loads(read(s3, prefix, f"usage/{spec_name}/{index}.json"))


ALLOCATE = (
    'python3 -c \'import sys; b = bytearray({params.mib} * 2**20); b[::4096] = b"x" * '
    'len(b[::4096]); open(sys.argv[1], "w").write(str(len(b)))\' {output[0]:q}'
)


def test_usage_document_measures_the_job(s3, endpoint, lib, work, prefix):
    """A shell rule touching 200 MiB in a child process: its usage document, next to the
    spec at the array child's index, has the peak within 10%, staged bytes and the status."""
    upload_inputs(s3, prefix, {"in/t.txt": b"x" * 5000})
    spec = shell_spec(prefix, "big", ALLOCATE)
    spec["params"] = section([200], {"mib": [0, None]})
    written = spec_records([by_reference(s3, prefix, d) for d in (shell_spec(prefix, "x"), spec)])
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/specs/mem.jsonl", Body=written.body)

    done = run_runtime(
        endpoint, lib, work, prefix, "mem.jsonl",
        KNOT_SPEC_RECORD_BYTES=str(written.record_bytes), AWS_BATCH_JOB_ARRAY_INDEX="1",
        KNOT_SPEC_SHA256=written.digest,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    usage = usage_of(s3, prefix, "mem.jsonl", 1)
    assert 200 <= usage["peak_rss_mb"] <= 220, usage
    assert usage["stage_in_bytes"] == 5000
    assert usage["stage_out_bytes"] == len(str(200 * 2**20))
    assert usage["exit_status"] == 0
    assert usage["wall_s"] > 0 and usage["cpu_s"] > 0 and usage["run_s"] == usage["wall_s"]
    assert usage["start"] <= usage["end"]
    assert not exists(s3, prefix, "usage/mem.jsonl/0.json")


def test_failed_job_still_sends_its_usage(s3, endpoint, lib, work, prefix):
    upload_inputs(s3, prefix, {"in/t.txt": b"hello\n"})
    digest = put_spec(s3, prefix, shell_spec(prefix, "s1", "exit 3"))

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    usage = usage_of(s3, prefix, "job-0.json")
    assert usage["exit_status"] == 1 and usage["stage_out_bytes"] == 0


# ---- a group job: members one after another, each with its own rule module


def group_spec(prefix: str, fail: bool = False) -> dict:
    """first (run) writes a kept-on-disk mid.txt, from the group's config, and out1.txt;
    second (shell) reads mid.txt from the group and in.txt from S3 and writes out2.txt."""
    mid = {**item("mid.txt", prefix), "upload": False}
    first = make_spec("first", "run", output=section([mid, item("out1.txt", prefix)]))
    command = "exit 3" if fail else "cat {input} > {output}"
    second = make_spec(
        "second",
        "shell",
        input=section([{**item("mid.txt", prefix), "from_group": True}, item("in.txt", prefix)]),
        output=section([item("out2.txt", prefix)]),
        shell={"command": command, "executable": "bash"},
    ) | {"jobid": 8}
    members = [{k: v for k, v in m.items() if k not in ("version", "config")}
               for m in (first, second)]  # fmt: skip
    return {"version": SPEC_VERSION, "kind": "group", "rule": "group:g:first+second",
            "jobid": 7, "group": "g", "config": {"who": "the group"},
            "members": members}  # fmt: skip


def write_member(members: Path, rule: str, body: str) -> None:
    (members / rule / "lib").mkdir(parents=True)
    (members / rule / "lib" / "knot_rule.py").write_text(textwrap.dedent(body))


FIRST_RULE = """
    from knot_runtime.prelude import *

    def knot_run(input, output, params, wildcards, threads, resources, log, rule, jobid):
        open(output[0], "w").write(f"made by {rule} for {config['who']}\\n")
        open(output[1], "w").write("out1\\n")
"""


@pytest.mark.parametrize("fail", [False, True])
def test_group_job_runs_members_in_order_and_keeps_its_temp_file(
    s3, endpoint, lib, work, prefix, tmp_path, fail
):
    upload_inputs(s3, prefix, {"in.txt": b"from S3\n"})
    digest = put_spec(s3, prefix, group_spec(prefix, fail))
    write_member(tmp_path / "members", "first", FIRST_RULE)
    done = run_group(endpoint, lib, work, prefix, digest, tmp_path / "members", ["second"])
    assert not exists(s3, prefix, "mid.txt")
    usage = json.loads(read(s3, prefix, "usage/job-0.json/0.json"))
    if fail:
        assert done.returncode == 1
        assert "knot: rule second, jobid 8: FAILED" in done.stderr
        assert not exists(s3, prefix, "out1.txt") and not exists(s3, prefix, "out2.txt")
        return
    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "out1.txt") == b"out1\n"
    assert read(s3, prefix, "out2.txt") == b"made by first for the group\nfrom S3\n"
    assert "downloading 1 inputs (1 files)" in done.stderr
    assert [(m["rule"], m["jobid"]) for m in usage["members"]] == [("first", 7), ("second", 8)]


def test_a_member_with_no_action_runs_nothing_and_makes_its_touch_outputs(
    s3, endpoint, lib, work, prefix, tmp_path
):
    """A rule with no action (Snakemake's norun) reaches a job only inside a group: it runs
    nothing, and its touch() output is made for the next member, as Snakemake makes it."""
    upload_inputs(s3, prefix, {"in.txt": b"data\n"})
    stamp = {**item("stamp.txt", prefix), "touch": True}
    # Named as Snakemake names a rule written without a name (`rule:`): by its number.
    first = make_spec(
        "5", "norun", input=section([item("in.txt", prefix)]), output=section([stamp])
    )
    second = make_spec(
        "after",
        "shell",
        input=section([{**item("stamp.txt", prefix), "from_group": True}]),
        output=section([item("after.txt", prefix)]),
        shell={"command": "wc -c < {input} > {output}", "executable": "bash"},
    ) | {"jobid": 8}
    members = [{k: v for k, v in m.items() if k != "version"} for m in (first, second)]
    group = {"version": SPEC_VERSION, "kind": "group", "rule": "group:g:5+after",
             "jobid": 7, "group": "g", "members": members}  # fmt: skip
    digest = put_spec(s3, prefix, group)
    done = run_group(endpoint, lib, work, prefix, digest, tmp_path / "members", ["5", "after"])
    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "stamp.txt") == b""
    assert read(s3, prefix, "after.txt").strip() == b"0"


def test_input_outside_the_host_workdir_is_staged_read_only_under_its_absolute_name(
    s3, endpoint, lib, work, prefix
):
    """Reference data the host names by an absolute path: the job reads it from
    <workdir>/.knot-external/<path>, read only, by an absolute name (a command may cd)."""
    upload_inputs(s3, prefix, {"_abs/refs/genome.txt": b"ACGT\n"})
    command = "cd {output.where_dir} && cat {input.ref} > seq.txt && stat -c %a {input.ref} > mode"
    command += " && echo {input.ref} > seen"
    doc = make_spec(
        "refs",
        "shell",
        input=section(
            [{"path": "/refs/genome.txt", "uri": uri(prefix, "_abs/refs/genome.txt")}],
            {"ref": [0, None]},
        ),
        output=section([item("res", prefix, directory=True)], {"where_dir": [0, None]}),
        shell={"command": "mkdir -p {output.where_dir} && " + command, "executable": "bash"},
    )
    digest = put_spec(s3, prefix, doc)

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "res/seq.txt") == b"ACGT\n"
    assert read(s3, prefix, "res/mode") == b"444\n"
    staged = work.resolve() / ".knot-external/refs/genome.txt"
    assert read(s3, prefix, "res/seen") == f"{staged}\n".encode()
    assert not exists(s3, prefix, "_abs/refs/genome.txt.out")  # inputs never go back


@pytest.mark.parametrize(
    ("section_name", "path", "problem"),
    [("output", "/etc/escape.txt", "absolute path"), ("input", "/refs/../../etc/x", "'..' part")],
)
def test_absolute_outputs_and_dotdot_external_inputs_are_refused(
    s3, endpoint, lib, work, prefix, section_name, path, problem
):
    doc = shell_spec(prefix, "s1", command="echo hi")
    doc[section_name] = section([{"path": path, "uri": uri(prefix, "x")}])
    digest = put_spec(s3, prefix, doc)

    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=digest)

    assert done.returncode == 1
    assert "the job spec is unsafe" in done.stderr and problem in done.stderr
    assert list(work.iterdir()) == []


# ---- pipes and links


def pipe_group_spec(prefix: str, fail_writer: bool = False) -> dict:
    """A pipe's reader listed before its writer (as Snakemake's layer order may put it),
    both of pipe group 0; the FIFO never travels."""
    fifo = {**item("n.pipe", prefix), "pipe": True, "upload": False}
    writer_command = "exit 4" if fail_writer else "seq 1 3000 > {output}"
    reader = make_spec(
        "consume", "shell",
        input=section([{**item("n.pipe", prefix), "from_group": True}]),
        output=section([item("sum.txt", prefix)]),
        shell={"command": "awk '{{s += $1}} END {{print s}}' < {input} > {output}",
               "executable": "bash"},
    ) | {"pipe_group": 0}  # fmt: skip
    writer = make_spec(
        "produce", "shell", output=section([fifo]),
        shell={"command": writer_command, "executable": "bash"},
    ) | {"jobid": 8, "pipe_group": 0}  # fmt: skip
    members = [{k: v for k, v in m.items() if k != "version"} for m in (reader, writer)]
    return {"version": SPEC_VERSION, "kind": "group", "rule": "group:p:consume+produce",
            "jobid": 7, "group": "p", "members": members}  # fmt: skip


@pytest.mark.parametrize("fail_writer", [False, True])
def test_a_pipes_writer_and_reader_run_at_once(
    s3, endpoint, lib, work, prefix, tmp_path, fail_writer
):
    digest = put_spec(s3, prefix, pipe_group_spec(prefix, fail_writer))
    members = ["consume", "produce"]
    done = run_group(endpoint, lib, work, prefix, digest, tmp_path / "members", members)
    assert not exists(s3, prefix, "n.pipe")
    if fail_writer:  # the reader, waiting on the FIFO, is ended too
        assert done.returncode == 1
        assert "knot: rule produce, jobid 8: FAILED" in done.stderr
        assert not exists(s3, prefix, "sum.txt")
        return
    assert done.returncode == 0, done.stderr
    assert "running consume, produce at once (pipes)" in done.stderr
    assert read(s3, prefix, "sum.txt") == f"{sum(range(3001))}\n".encode()
    usage = json.loads(read(s3, prefix, "usage/job-0.json/0.json"))
    assert sorted(m["rule"] for m in usage["members"]) == ["consume", "produce"]


def test_a_link_output_uploads_its_bytes_and_records_its_target(s3, endpoint, lib, work, prefix):
    upload_inputs(s3, prefix, {"in/t.txt": b"linked\n"})
    spec = make_spec(
        "link", "shell",
        input=section([item("in/t.txt", prefix)]),
        output=section([item("out/rel.txt", prefix), item("out/abs.txt", prefix)]),
        shell={"command": "ln -s ../in/t.txt out/rel.txt && ln -s /etc/hostname out/abs.txt",
               "executable": "bash"},
    )  # fmt: skip
    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=put_spec(s3, prefix, spec))
    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "out/rel.txt") == b"linked\n"
    rel = s3.head_object(Bucket=BUCKET, Key=f"{prefix}/out/rel.txt")["Metadata"]
    assert rel["knot-link"] == "../in/t.txt"
    absolute = s3.head_object(Bucket=BUCKET, Key=f"{prefix}/out/abs.txt")["Metadata"]
    assert "knot-link" not in absolute  # never recreated on the host


def test_an_empty_directory_input_exists_and_an_empty_output_holds_snakemakes_marker(
    s3, endpoint, lib, work, prefix
):
    empty = {"version": 1, "files": []}
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/in/empty.knot-manifest.json",
                  Body=json.dumps(empty).encode())  # fmt: skip
    doc = make_spec(
        "empty", "shell",
        input=section([item("in/empty", prefix, directory=True) | {"manifest": True}]),
        output=section([item("res/none", prefix, directory=True) | {"manifest": True}]),
        shell={"command": "test -d {input} && mkdir -p {output}", "executable": "bash"},
    )  # fmt: skip
    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=put_spec(s3, prefix, doc))
    assert done.returncode == 0, done.stderr
    manifest = json.loads(read(s3, prefix, "res/none.knot-manifest.json"))
    assert [(f["name"], f["size"]) for f in manifest["files"]] == [(".snakemake_timestamp", 0)]
    assert read(s3, prefix, "res/none/.snakemake_timestamp") == b""


def test_an_empty_storage_directory_output_holds_snakemakes_timestamp(
    s3, endpoint, lib, work, prefix
):
    doc = make_spec(
        "empty", "shell",
        output=section([item("res/none", prefix, directory=True) | {"manifest": "if-present"}]),
        shell={"command": "mkdir -p {output}", "executable": "bash"},
    )  # fmt: skip
    done = run_runtime(endpoint, lib, work, prefix, KNOT_SPEC_SHA256=put_spec(s3, prefix, doc))
    assert done.returncode == 0, done.stderr
    assert read(s3, prefix, "res/none/.snakemake_timestamp") == b""
