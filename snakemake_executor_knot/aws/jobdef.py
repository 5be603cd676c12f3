"""One Batch job definition per image: the pure builder, and a describe-before-register
cache so knot never registers a definition per job (AWS accounts fill up with those)."""

from __future__ import annotations

import threading

from botocore.exceptions import BotoCoreError, ClientError

from ..compute.platform import platform_for
from ..config.settings import KnotConfig
from ..errors import aws_error
from ..names import short_hash
from ..runtime.cache import HOST_PATH as CACHE_HOST_PATH
from ..runtime.cache import MOUNT_POINT as CACHE_MOUNT_POINT
from ..runtime.contract import RUNTIME_COMMAND
from .policy import JOB_USER
from .stack import Infra
from .tags import PLATFORM_TAG, STACK_TAG

LOG_STREAM_PREFIX = "knot"
CACHE_VOLUME = "knot-cache"
# Defaults only: every SubmitJob overrides them with the rule's own resources.
DEFAULT_VCPUS = 1
DEFAULT_MEMORY_MIB = 2048


def retry_strategy(spot_retries: int) -> dict:
    """Retry only spot interruptions ("Host EC2 (instance ...) terminated."); a
    failure of the rule itself exits at once, as it would fail again."""
    return {
        "attempts": spot_retries + 1,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }


def _container_properties(image_uri: str, infra: Infra) -> dict:
    # No credentials and no environment here: the job role gives AWS access, and the
    # per-job facts travel in the job spec on S3 (KNOT_SPEC_URI is an override).
    return {
        "image": image_uri,
        "command": list(RUNTIME_COMMAND),
        "jobRoleArn": infra.job_role_arn,
        "resourceRequirements": [
            {"type": "VCPU", "value": str(DEFAULT_VCPUS)},
            {"type": "MEMORY", "value": str(DEFAULT_MEMORY_MIB)},
        ],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": infra.log_group,
                "awslogs-region": infra.region,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
            },
        },
        # Stated, not left to Batch's defaults: every job runs as knot's uid (whatever the
        # image's USER says), never privileged, and the runner policy allows registering
        # nothing else (batch:User, batch:Privileged; see policy.py).
        "user": JOB_USER,
        "privileged": False,
        # The instance's input cache (runtime/cache.py): a folder the launch template
        # makes on the host; a job uses it only when its class sets a cap (SubmitJob).
        "volumes": [{"name": CACHE_VOLUME, "host": {"sourcePath": CACHE_HOST_PATH}}],
        "mountPoints": [
            {"sourceVolume": CACHE_VOLUME, "containerPath": CACHE_MOUNT_POINT, "readOnly": False}
        ],
    }


def build_job_definition(image_uri: str, infra: Infra, config: KnotConfig) -> dict:
    """RegisterJobDefinition kwargs. The name is a hash of everything else, so equal
    specs share one definition and a changed spec gets a new one."""
    platform = platform_for(config.instance_types)
    spec = {
        "type": "container",
        "platformCapabilities": ["EC2"],
        "containerProperties": _container_properties(image_uri, infra),
        "retryStrategy": retry_strategy(config.spot_retries),
        # Batch's runtimePlatform is for Fargate only; on EC2 the compute environment's
        # instance types decide. The tag (and so the name) records the image's platform.
        "tags": {**config.tag_dict, STACK_TAG: infra.stack_name, PLATFORM_TAG: platform},
        "propagateTags": True,
    }
    return {"jobDefinitionName": f"knot-{short_hash(spec)}", **spec}


def newest_active_arn(definitions: list[dict]) -> str | None:
    active = [d for d in definitions if d.get("status") == "ACTIVE"]
    if not active:
        return None
    return max(active, key=lambda d: d["revision"])["jobDefinitionArn"]


class JobDefinitions:
    """Job definition ARN per image, described before registered, cached per process."""

    def __init__(self, batch_client, infra: Infra, config: KnotConfig) -> None:
        self._batch = batch_client
        self._infra = infra
        self._config = config
        self._arns: dict[str, str] = {}
        # One lock for all images: resolving is rare (once per image per process) and
        # a single lock keeps two threads from registering the same definition twice.
        self._lock = threading.Lock()

    def arn_for(self, image_uri: str) -> str:
        with self._lock:
            arn = self._arns.get(image_uri)
            if arn is None:
                arn = self._describe_or_register(image_uri)
                self._arns[image_uri] = arn
            return arn

    def _describe_or_register(self, image_uri: str) -> str:
        request = build_job_definition(image_uri, self._infra, self._config)
        name = request["jobDefinitionName"]
        try:
            arn = self._describe(name)
            if arn is None:
                arn = self._batch.register_job_definition(**request)["jobDefinitionArn"]
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(
                exc, f"registering job definition {name} for image {image_uri}", service="batch"
            ) from exc
        return arn

    def _describe(self, name: str) -> str | None:
        pages = self._batch.get_paginator("describe_job_definitions").paginate(
            jobDefinitionName=name, status="ACTIVE"
        )
        definitions = [d for page in pages for d in page["jobDefinitions"]]
        return newest_active_arn(definitions)
