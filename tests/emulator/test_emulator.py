"""The knot emulator: its registry and state rules (fast), and end to end against a
running emulator with real Docker containers (marked e2e). The patches' pure fidelity rules
are tested in ``patches/``, one module per AWS service."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import docker
import pytest

from snakemake_executor_knot.emulator import lifecycle as lifecycle
from snakemake_executor_knot.emulator import registry as registry
from snakemake_executor_knot.emulator import server as emu
from snakemake_executor_knot.emulator import state as emu_state
from snakemake_executor_knot.errors import ConfigError

from ..e2e.fixtures import boto_client, emulator_cli, start_emulator, stop_emulator

# --- pure rules ---------------------------------------------------------------------------


def test_registry_config_stores_on_disk_and_notifies(tmp_path):
    config = registry.registry_config(tmp_path, 5101, "http://127.0.0.1:9/registry-events")
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path)
    assert config["http"]["addr"] == "127.0.0.1:5101"
    assert config["notifications"]["endpoints"][0]["url"] == "http://127.0.0.1:9/registry-events"


def test_pushed_manifests_keeps_tagged_manifest_pushes_only():
    manifest = registry.MANIFEST_TYPES[0]
    envelope = {
        "events": [
            {
                "action": "push",
                "target": {
                    "mediaType": manifest,
                    "repository": "knot",
                    "tag": "t1",
                    "digest": "sha256:1",
                },
            },
            {
                "action": "push",
                "target": {
                    "mediaType": "application/octet-stream",
                    "repository": "knot",
                    "digest": "sha256:2",
                },
            },
            {
                "action": "pull",
                "target": {
                    "mediaType": manifest,
                    "repository": "knot",
                    "tag": "t1",
                    "digest": "sha256:1",
                },
            },
            {
                "action": "push",
                "target": {"mediaType": manifest, "repository": "knot", "digest": "sha256:3"},
            },
        ]
    }
    assert list(registry.pushed_manifests(envelope)) == [("knot", "t1", "sha256:1")]


def test_build_state_and_base_image_name(tmp_path):
    ready = {"port": 5100, "registry_port": 5101, "pid": 11, "registry_pid": 12}
    state = emu_state.build_state(ready, tmp_path)
    assert state["endpoint"] == "http://127.0.0.1:5100"
    assert state["registry"] == "127.0.0.1:5101"
    assert state["region"] == "us-east-1"
    assert state["pids"] == {"server": 11, "registry": 12}
    assert state["base_image"] == emu_state.base_image_name()
    assert emu_state.base_image_name((3, 12)) == "knot-base:py3.12"


def test_emulator_state_says_how_to_start_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOT_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="knot emulator start"):
        emu_state.emulator_state()
    # A state file whose server is gone (pid 0 never names a process) is stale.
    ready = {"port": 1, "registry_port": 2, "pid": 0, "registry_pid": 0}
    emu_state.write_json(emu_state.state_path(), emu_state.build_state(ready, tmp_path))
    with pytest.raises(ConfigError, match="stale"):
        emu_state.emulator_endpoint()


def test_process_alive_checks_the_command_line():
    me = os.getpid()
    assert emu_state.process_alive(me, "python")
    assert not emu_state.process_alive(me, "no-such-marker-in-my-command-line")
    assert not emu_state.process_alive(None)


def test_an_owner_is_gone_when_its_pid_ends_or_is_recycled():
    sleeper = subprocess.Popen(["sleep", "60"])
    owner, recycled = emu.Owner(sleeper.pid), emu.Owner(sleeper.pid)
    recycled.started = (recycled.started or 0) - 1  # as if this pid were another process's
    try:
        assert not owner.gone() and recycled.gone()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert owner.gone()


def test_start_refuses_an_owner_that_does_not_run(tmp_path):
    sleeper = subprocess.Popen(["true"])
    sleeper.wait()  # its pid is free now, and reaped
    done = emulator_cli("start", "--stop-with", str(sleeper.pid), knot_home=tmp_path)
    assert done.returncode != 0 and f"--stop-with {sleeper.pid}: no such process" in done.stderr
    assert not (tmp_path / "emulator.json").exists()


def _wait_until_ended(pids: list[int], marker: str, timeout: float = 60) -> list[int]:
    """The pids of ``pids`` still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if emu_state.process_alive(pid, marker)]
        if not alive:
            return []
        time.sleep(0.25)
    return alive


def test_stop_with_stops_a_server_when_its_owner_is_killed():
    """scripts/stop-with, the watcher that stops a test session's dockerd."""
    owner = subprocess.Popen(["sleep", "60"], start_new_session=True)
    server = subprocess.Popen(["sleep", "61"], start_new_session=True)
    script = Path(__file__).parents[2] / "scripts" / "stop-with"
    watcher = subprocess.Popen([str(script), str(owner.pid), str(server.pid)])
    try:
        time.sleep(1)
        assert server.poll() is None and watcher.poll() is None
        owner.kill()
        owner.wait()
        assert server.wait(timeout=30) == -15  # SIGTERM, within a poll or two
        assert watcher.wait(timeout=30) == 0
    finally:
        for proc in (owner, server, watcher):
            proc.kill()
            proc.wait()


# --- end to end ------------------------------------------------------------------------------

PRINT_ENV = (
    "import os, sys, urllib.request\n"
    "env = os.environ\n"
    "index = env.get('AWS_BATCH_JOB_ARRAY_INDEX')\n"
    "print('index=%s endpoint=%s region=%s' % (index, env.get('AWS_ENDPOINT_URL'),"
    " env.get('AWS_DEFAULT_REGION')))\n"
    "bucket = env.get('MARK_BUCKET')\n"
    "if bucket:\n"
    "    request = urllib.request.Request('%s/%s-%s' % (env['AWS_ENDPOINT_URL'], bucket, index),"
    " method='PUT')\n"
    "    urllib.request.urlopen(request, timeout=10)\n"
    "sys.exit(3 if index is not None and index == env.get('FAIL_INDEX') else 0)\n"
)
TERMINAL = ("SUCCEEDED", "FAILED")


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def queue(emulator) -> str:
    """A job queue on the emulator, made directly with boto3."""
    iam, ec2, batch = (boto_client(emulator, s) for s in ("iam", "ec2", "batch"))
    name = _unique("e2e")
    role = iam.create_role(RoleName=f"{name}-svc", AssumeRolePolicyDocument="{}")["Role"]
    iam.create_instance_profile(InstanceProfileName=f"{name}-ip")
    profile = iam.get_instance_profile(InstanceProfileName=f"{name}-ip")["InstanceProfile"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=name, Description="e2e", VpcId=vpc)["GroupId"]
    resources = {
        "type": "EC2",
        "minvCpus": 0,
        "maxvCpus": 8,
        "instanceTypes": ["optimal"],
        "subnets": [subnet],
        "securityGroupIds": [group],
        "instanceRole": profile["Arn"],
    }
    env_arn = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="MANAGED",
        computeResources=resources,
        serviceRole=role["Arn"],
    )["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName=f"{name}-q",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env_arn}],
    )
    return f"{name}-q"


@pytest.fixture(scope="module")
def job_definition(emulator) -> dict:
    """A job definition printing its environment, logging to its own awslogs group."""
    group = f"/knot/{_unique('e2e')}"
    boto_client(emulator, "logs").create_log_group(logGroupName=group)
    arn = boto_client(emulator, "batch").register_job_definition(
        jobDefinitionName=_unique("print-env"),
        type="container",
        containerProperties={
            "image": emulator["base_image"],
            "command": ["python3", "-c", PRINT_ENV],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": group, "awslogs-stream-prefix": "knot"},
            },
        },
    )["jobDefinitionArn"]
    return {"arn": arn, "log_group": group}


def _wait(batch, job_ids: list[str], timeout: float = 90) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {j["jobId"]: j for j in batch.describe_jobs(jobs=job_ids)["jobs"]}
        if all(jobs[i]["status"] in TERMINAL for i in job_ids):
            return jobs
        time.sleep(0.5)
    pytest.fail(f"jobs did not finish within {timeout:.0f} s: {job_ids}")


def _submit_array(emulator, queue, job_definition, size: int, env: dict) -> str:
    return boto_client(emulator, "batch").submit_job(
        jobName=_unique("array"),
        jobQueue=queue,
        jobDefinition=job_definition["arn"],
        arrayProperties={"size": size},
        containerOverrides={"environment": [{"name": k, "value": v} for k, v in env.items()]},
    )["jobId"]


def _log_messages(emulator, group: str, stream: str) -> list[str]:
    events = boto_client(emulator, "logs").get_log_events(logGroupName=group, logStreamName=stream)[
        "events"
    ]
    return [event["message"] for event in events]


@pytest.mark.e2e
def test_array_children_see_their_index_and_reach_the_emulator(emulator, queue, job_definition):
    batch, s3 = boto_client(emulator, "batch"), boto_client(emulator, "s3")
    mark = _unique("mark")
    parent = _submit_array(emulator, queue, job_definition, 3, {"MARK_BUCKET": mark})
    children = [f"{parent}:{i}" for i in range(3)]
    jobs = _wait(batch, [parent, *children])
    assert [jobs[i]["status"] for i in (parent, *children)] == ["SUCCEEDED"] * 4
    for index, child in enumerate(children):
        assert jobs[child]["arrayProperties"] == {"index": index}
        stream = jobs[child]["container"]["logStreamName"]
        assert stream.startswith("knot/default/")
        messages = _log_messages(emulator, job_definition["log_group"], stream)
        assert f"index={index} endpoint={emulator['endpoint']} region=us-east-1" in messages
    # Each child reached the emulator's S3 from inside its container.
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {f"{mark}-{i}" for i in range(3)} <= buckets


@pytest.mark.e2e
def test_job_definitions_and_jobs_carry_no_credentials(emulator, job_definition):
    batch = boto_client(emulator, "batch")
    [definition] = batch.describe_job_definitions(jobDefinitions=[job_definition["arn"]])[
        "jobDefinitions"
    ]
    text = json.dumps(definition)
    assert "AWS_ACCESS_KEY_ID" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert "testing" not in text


@pytest.mark.e2e
def test_a_failing_child_fails_the_parent(emulator, queue, job_definition):
    batch = boto_client(emulator, "batch")
    parent = _submit_array(emulator, queue, job_definition, 3, {"FAIL_INDEX": "1"})
    children = [f"{parent}:{i}" for i in range(3)]
    jobs = _wait(batch, [parent, *children])
    assert jobs[parent]["status"] == "FAILED"
    assert jobs[parent]["arrayProperties"]["statusSummary"]["FAILED"] == 1
    assert [jobs[c]["status"] for c in children] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert jobs[children[1]]["container"]["exitCode"] == 3
    assert jobs[children[1]]["statusReason"] == lifecycle.NONZERO_EXIT_REASON


@pytest.mark.e2e
def test_array_of_one_is_refused_as_on_aws(emulator, queue, job_definition):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="between 2 and 10000"):
        _submit_array(emulator, queue, job_definition, 1, {})


def _tiny_image(client: docker.DockerClient, repository: str, tag: str) -> None:
    """A one-file image made with docker import (no base image, no registry)."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        data = uuid.uuid4().hex.encode()
        info = tarfile.TarInfo("marker.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    client.api.import_image_from_data(payload.getvalue(), repository=repository, tag=tag)


def _push(client: docker.DockerClient, repository: str, tag: str) -> str:
    """Push and return the manifest digest docker reports."""
    digest = ""
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            pytest.fail(f"docker push failed: {line['error']}")
        digest = line.get("aux", {}).get("Digest", digest)
    return digest


def _wait_for_image(ecr, repository: str, tag: str, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        details = ecr.describe_images(repositoryName=repository)["imageDetails"]
        if any(tag in d.get("imageTags", []) for d in details):
            return details
        time.sleep(0.2)
    pytest.fail(f"{repository}:{tag} did not appear in ECR within {timeout:.0f} s")


@pytest.mark.e2e
def test_docker_push_to_the_repository_uri_appears_in_ecr(emulator):
    ecr, client = boto_client(emulator, "ecr"), docker.from_env()
    name = _unique("knot")
    uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    assert uri == f"{emulator['registry']}/{name}"
    [auth] = ecr.get_authorization_token()["authorizationData"]
    assert auth["proxyEndpoint"] == f"https://{emulator['registry']}"
    _tiny_image(client, uri, "v1")
    try:
        digest = _push(client, uri, "v1")
        [detail] = _wait_for_image(ecr, name, "v1")
        assert detail["imageDigest"] == digest
        [image] = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])["images"]
        assert json.loads(image["imageManifest"])["schemaVersion"] == 2
    finally:
        client.images.remove(f"{uri}:v1", force=True)


@pytest.mark.e2e
def test_a_registry_image_name_runs_without_a_pull(emulator, queue, job_definition):
    """Rule images are built locally and tagged <registry>/<repo>:<tag>; a job using that
    name must run from the local image. This tag is never pushed, so a pull would fail."""
    client, batch = docker.from_env(), boto_client(emulator, "batch")
    local = f"{emulator['registry']}/{_unique('never-pushed')}"
    client.images.get(emulator["base_image"]).tag(local, "t")
    try:
        arn = batch.register_job_definition(
            jobDefinitionName=_unique("local-image"),
            type="container",
            containerProperties={
                "image": f"{local}:t",
                "command": ["python3", "-c", "print('ran')"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "256"},
                ],
            },
        )["jobDefinitionArn"]
        job = batch.submit_job(jobName="local", jobQueue=queue, jobDefinition=arn)["jobId"]
        assert _wait(batch, [job])[job]["status"] == "SUCCEEDED"
    finally:
        client.images.remove(f"{local}:t")


@pytest.mark.e2e
def test_tls_only_bucket_policy_does_not_block_the_emulator(emulator):
    s3 = boto_client(emulator, "s3")
    bucket = _unique("tls-only")
    s3.create_bucket(Bucket=bucket)
    statement = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


@pytest.mark.e2e
def test_knot_emulator_status_and_a_second_start(emulator):
    env = {**os.environ, "KNOT_HOME": emulator["knot_home"]}
    knot = [sys.executable, "-m", "snakemake_executor_knot.cli", "emulator"]
    status = subprocess.run([*knot, "status"], capture_output=True, text=True, env=env)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["endpoint"] == emulator["endpoint"]
    assert shown["pids"] == emulator["pids"]
    again = subprocess.run([*knot, "start"], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    state_file = Path(emulator["knot_home"]) / "emulator.json"
    assert json.loads(state_file.read_text())["pids"] == emulator["pids"]


@pytest.mark.e2e
def test_stop_ends_its_processes_and_images_survive_a_restart(docker_engine, tmp_path):
    """A second emulator of its own: push, stop, start again, recreate the repository."""
    knot_home = tmp_path / "home"
    client = docker.from_env()
    first = start_emulator(knot_home)
    name = _unique("kept")
    try:
        uri = boto_client(first, "ecr").create_repository(repositoryName=name)["repository"][
            "repositoryUri"
        ]
        _tiny_image(client, uri, "v1")
        digest = _push(client, uri, "v1")
        _wait_for_image(boto_client(first, "ecr"), name, "v1")
    finally:
        client.images.remove(f"{uri}:v1", force=True)
        stop_emulator(knot_home)
    assert not (knot_home / "emulator.json").exists()
    for pid in first["pids"].values():
        assert not emu_state.process_alive(pid, first["state_dir"])
    stopped = emulator_cli("status", knot_home=knot_home)
    assert stopped.returncode == 1 and "knot emulator start" in stopped.stderr

    second = start_emulator(knot_home)
    try:
        ecr = boto_client(second, "ecr")
        ecr.create_repository(repositoryName=name)
        [detail] = ecr.describe_images(repositoryName=name)["imageDetails"]
        assert detail["imageTags"] == ["v1"] and detail["imageDigest"] == digest
    finally:
        stop_emulator(knot_home)


@pytest.mark.e2e
def test_an_emulator_stops_by_itself_when_its_owner_is_killed(docker_engine, tmp_path):
    """An emulator started for a session that is killed before its clean-up (kill -9 of
    pytest, say) stops by itself, registry included."""
    knot_home = tmp_path / "home"
    owner = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        done = emulator_cli(
            "start", "--port", "0", "--stop-with", str(owner.pid), knot_home=knot_home
        )
        assert done.returncode == 0, done.stderr
        state = json.loads((knot_home / "emulator.json").read_text())
        assert emu_state.serve_alive(state)
    finally:
        owner.kill()
        owner.wait()
    try:
        assert _wait_until_ended(list(state["pids"].values()), state["state_dir"]) == []
        status = emulator_cli("status", knot_home=knot_home)
        assert status.returncode == 1 and "not running" in status.stderr
    finally:
        stop_emulator(knot_home)  # a no-op when it stopped, as it should have


@pytest.mark.e2e
def test_knots_stack_is_created_and_runs_a_job(emulator):
    """knot's own CloudFormation template, in server mode: the stack completes, its
    repository URI names the local registry, and a job in its queue runs, writes to its
    bucket and logs to its log group."""
    from snakemake_executor_knot.aws.template.assembly import build_template, render
    from snakemake_executor_knot.config.settings import KnotConfig

    cfn, batch = boto_client(emulator, "cloudformation"), boto_client(emulator, "batch")
    config = KnotConfig(region="us-east-1", emulator=True, stack_name=_unique("stack"))
    cfn.create_stack(
        StackName=config.stack_name,
        TemplateBody=render(build_template(config)),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    [stack] = cfn.describe_stacks(StackName=config.stack_name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    out = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert out["RepositoryUri"] == f"{emulator['registry']}/{out['RepositoryName']}"
    put = (
        "import os, urllib.request\n"
        "url = '%s/%s/from-job' % (os.environ['AWS_ENDPOINT_URL'], os.environ['BUCKET'])\n"
        "headers = {'Content-Type': 'application/octet-stream'}\n"
        "request = urllib.request.Request(url, data=b'hi', method='PUT', headers=headers)\n"
        "urllib.request.urlopen(request)\n"
        "print('wrote', url)\n"
    )
    arn = batch.register_job_definition(
        jobDefinitionName=_unique("stack-job"),
        type="container",
        containerProperties={
            "image": emulator["base_image"],
            "command": ["python3", "-c", put],
            "jobRoleArn": out["JobRoleArn"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": out["LogGroupName"], "awslogs-stream-prefix": "k"},
            },
        },
    )["jobDefinitionArn"]
    job = batch.submit_job(
        jobName="stack-job",
        jobQueue=out["JobQueueArn"],
        jobDefinition=arn,
        containerOverrides={"environment": [{"name": "BUCKET", "value": out["BucketName"]}]},
    )["jobId"]
    done = _wait(batch, [job])[job]
    assert done["status"] == "SUCCEEDED"
    messages = _log_messages(emulator, out["LogGroupName"], done["container"]["logStreamName"])
    assert any(m.startswith("wrote ") for m in messages)
    body = boto_client(emulator, "s3").get_object(Bucket=out["BucketName"], Key="from-job")
    assert body["Body"].read() == b"hi"


def test_stop_discards_a_damaged_state_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOT_HOME", str(tmp_path))
    emu_state.state_path().write_text("{not json")
    with pytest.raises(ConfigError, match="damaged"):
        emu_state.emulator_state()
    assert emu.stop() is None
    assert not emu_state.state_path().exists()


@pytest.mark.e2e
def test_emulator_env_lets_knot_find_the_emulator(emulator_env, emulator):
    from snakemake_executor_knot.aws.clients import caller_identity, make_clients
    from snakemake_executor_knot.config.settings import KnotConfig

    clients = make_clients(KnotConfig(emulator=True))
    assert clients.endpoint_url == emulator["endpoint"]
    assert clients.region == "us-east-1"
    assert caller_identity(clients)["Account"]
    assert emu_state.emulator_state()["base_image"] == emulator["base_image"]


@pytest.mark.e2e
def test_infra_up_and_down_with_the_knot_command(emulator_env, emulator):
    """What a user does to start over: ``knot infra down`` deletes the whole stack on the
    emulator (moto alone keeps its route table, which blocks the VPC), and the queue and
    compute environments go with it."""
    name = _unique("updown")
    stack = ["--emulator", "--stack-name", name]
    knot = [sys.executable, "-m", "snakemake_executor_knot.cli", *stack, "infra"]
    up = subprocess.run([*knot, "up"], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    batch = boto_client(emulator, "batch")
    queues = {q["jobQueueArn"] for q in batch.describe_job_queues()["jobQueues"]}

    down = subprocess.run([*knot, "down", "--yes"], capture_output=True, text=True, timeout=300)

    assert down.returncode == 0, down.stderr
    status = subprocess.run([*knot, "status"], capture_output=True, text=True, timeout=60)
    assert "does not exist" in status.stdout, status.stdout + status.stderr
    left = {q["jobQueueArn"] for q in batch.describe_job_queues()["jobQueues"]}
    # The stack's queues (its class's spot-first queue and its on-demand one) are gone.
    mine = {q for q in queues if f"/{name}-" in q}
    assert len(mine) == 2 and left == queues - mine
