"""Job definitions: the pure builder, and describe-before-register caching against moto."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest
from botocore.stub import Stubber

from snakemake_executor_knot.aws.jobdef import JobDefinitions, build_job_definition
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.errors import AwsError, ConfigError

from ..conftest import make_infra

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/knot:fit-0123abcd"


INFRA = make_infra()
CONFIG = KnotConfig(tags=(("team", "neuro"),), spot_retries=2)


def test_job_definition_request():
    request = build_job_definition(IMAGE, INFRA, CONFIG)
    name = request.pop("jobDefinitionName")
    assert request == {
        "type": "container",
        "platformCapabilities": ["EC2"],
        "containerProperties": {
            "image": IMAGE,
            "command": ["/opt/knot/venv/bin/python", "-m", "knot_runtime"],
            "jobRoleArn": INFRA.job_role_arn,
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/knot/jobs",
                    "awslogs-region": "us-east-1",
                    "awslogs-stream-prefix": "knot",
                },
            },
            "user": "1000",
            "privileged": False,
            "volumes": [{"name": "knot-cache", "host": {"sourcePath": "/var/lib/knot-cache"}}],
            "mountPoints": [
                {"sourceVolume": "knot-cache", "containerPath": "/knot-cache", "readOnly": False}
            ],
        },
        "retryStrategy": {
            "attempts": 3,
            "evaluateOnExit": [
                {"onStatusReason": "Host EC2*", "action": "RETRY"},
                {"onReason": "*", "action": "EXIT"},
            ],
        },
        "tags": {"team": "neuro", "knot:stack": "knot", "knot:platform": "linux/amd64"},
        "propagateTags": True,
    }
    assert name.startswith("knot-") and len(name) == len("knot-") + 16


def test_job_definition_names_the_graviton_platform():
    graviton = build_job_definition(IMAGE, INFRA, replace(CONFIG, instance_types=("m7g", "c7g")))
    x86 = build_job_definition(IMAGE, INFRA, CONFIG)
    assert graviton["tags"]["knot:platform"] == "linux/arm64"
    # Batch's runtimePlatform is for Fargate; knot's EC2 definitions leave it out.
    assert "runtimePlatform" not in graviton["containerProperties"]
    assert graviton["jobDefinitionName"] != x86["jobDefinitionName"]


def test_name_is_a_content_hash_of_the_spec():
    def name(image=IMAGE, infra=INFRA, config=CONFIG):
        return build_job_definition(image, infra, config)["jobDefinitionName"]

    assert name() == name(config=replace(CONFIG, max_vcpus=999))  # not part of the spec
    different = {
        name(image=IMAGE + "x"),
        name(infra=replace(INFRA, log_group="/other")),
        name(infra=replace(INFRA, job_role_arn="arn:aws:iam::1:role/other")),
        name(config=replace(CONFIG, spot_retries=0)),
        name(config=replace(CONFIG, tags=())),
    }
    assert name() not in different and len(different) == 5


def test_no_credentials_or_environment_in_the_definition():
    text = json.dumps(build_job_definition(IMAGE, INFRA, CONFIG)).lower()
    for word in ("aws_access_key", "secret", "session_token", "password", "environment"):
        assert word not in text


# ------------------------------------------------------------------------------ API tier


def test_registered_once_then_cached_in_process(clients, calls):
    definitions = JobDefinitions(clients.batch, INFRA, CONFIG)
    arn = definitions.arn_for(IMAGE)
    assert calls["batch.DescribeJobDefinitions"] == 1
    assert calls["batch.RegisterJobDefinition"] == 1
    registered = clients.batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
    assert registered[0]["containerProperties"]["image"] == IMAGE
    assert registered[0]["jobDefinitionName"].startswith("knot-")

    calls.reset()
    assert definitions.arn_for(IMAGE) == arn
    assert sum(calls.counts.values()) == 0


def test_new_process_describes_and_reuses(clients, calls):
    arn = JobDefinitions(clients.batch, INFRA, CONFIG).arn_for(IMAGE)
    calls.reset()
    fresh = JobDefinitions(clients.batch, INFRA, CONFIG)  # as a new process would
    assert fresh.arn_for(IMAGE) == arn
    assert calls["batch.DescribeJobDefinitions"] == 1
    assert calls["batch.RegisterJobDefinition"] == 0


def test_one_definition_per_image(clients, calls):
    definitions = JobDefinitions(clients.batch, INFRA, CONFIG)
    first = definitions.arn_for(IMAGE)
    second = definitions.arn_for(IMAGE + "-other")
    assert first != second
    assert calls["batch.RegisterJobDefinition"] == 2


def test_reuses_the_newest_active_revision(clients):
    request = build_job_definition(IMAGE, INFRA, CONFIG)
    rev1 = clients.batch.register_job_definition(**request)["jobDefinitionArn"]
    rev2 = clients.batch.register_job_definition(**request)["jobDefinitionArn"]
    assert JobDefinitions(clients.batch, INFRA, CONFIG).arn_for(IMAGE) == rev2
    clients.batch.deregister_job_definition(jobDefinition=rev2)
    assert JobDefinitions(clients.batch, INFRA, CONFIG).arn_for(IMAGE) == rev1


def test_threads_resolving_one_image_register_it_once(clients, calls):
    definitions = JobDefinitions(clients.batch, INFRA, CONFIG)
    arns: list[str] = []
    threads = [
        threading.Thread(target=lambda: arns.append(definitions.arn_for(IMAGE))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(arns) == 8 and len(set(arns)) == 1
    assert calls["batch.RegisterJobDefinition"] == 1
    assert calls["batch.DescribeJobDefinitions"] == 1


def test_access_denied_names_the_action(clients):
    batch = clients.batch
    with Stubber(batch) as stub:
        stub.add_client_error(
            "describe_job_definitions", "AccessDeniedException", "not allowed", 403
        )
        with pytest.raises(ConfigError, match="batch:DescribeJobDefinitions"):
            JobDefinitions(batch, INFRA, CONFIG).arn_for(IMAGE)


def test_register_failure_is_an_aws_error(clients):
    batch = clients.batch
    with Stubber(batch) as stub:
        stub.add_response("describe_job_definitions", {"jobDefinitions": []})
        stub.add_client_error("register_job_definition", "ClientException", "bad image", 400)
        with pytest.raises(AwsError, match="registering job definition knot-.*bad image"):
            JobDefinitions(batch, INFRA, CONFIG).arn_for(IMAGE)
