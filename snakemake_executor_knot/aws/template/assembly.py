"""knot's shared infrastructure as one CloudFormation template, built as a dict (pure):
the resources of every family (``iam``, ``network``, ``storage``, ``compute``), the stack's
outputs, its content hash and its rendering.

Every setting is written into the template itself (no CloudFormation Parameters), so the
template's content hash alone says whether a deployed stack matches the settings.

The template must satisfy both AWS (checked with cfn-lint) and moto's CloudFormation, which
the emulator and the tests use. moto quirks that shaped it:
- moto creates only the resource types it knows and skips the rest with a warning.
  AWS::S3::BucketPolicy is one of them, so the TLS-only policy exists on AWS only.
- moto ignores IAM ManagedPolicyArns, bucket public-access and lifecycle settings, and
  compute-environment tags; they are harmless there and needed on AWS.
- moto resolves ``Fn::GetAZs: ""`` to us-east-1 zones in every region, and accepts any
  known zone for a subnet, so the same template works in any emulated region.
- moto's CloudFormation never deletes route tables, Batch queues or compute environments
  (their models lack a delete), so deleting the stack in the emulator needs a fix there.
- moto names generated ECR repositories with upper-case letters, which Docker refuses;
  the repository and the log group therefore get explicit (lower-case) names.
"""

from __future__ import annotations

import json

from ...config.classes import logical_prefix
from ...config.settings import KnotConfig
from ...names import short_hash
from .common import Tags, get_att, ref
from .compute import class_queue_output, compute_resources, on_demand_queue_output
from .iam import extra_buckets, iam_resources
from .network import network_resources
from .storage import bucket_resources, log_group_resources, repository_resources

HASH_OUTPUT = "TemplateHash"
# The settings the stack was deployed with (JSON), compared by later runs (aws/stack.py).
SETTINGS_OUTPUT = "Settings"
METADATA_ADDRESS = "169.254.169.254"
# The stack's outputs, and the field of ``stack.Infra`` each one fills.
OUTPUTS = {
    "BucketName": "bucket",
    "RepositoryName": "repository_name",
    "RepositoryUri": "repository_uri",
    "JobQueueArn": "job_queue_arn",
    "LogGroupName": "log_group",
    "JobRoleArn": "job_role_arn",
}


def build_template(config: KnotConfig, boundary: str | None = None) -> dict:
    """The whole stack: IAM, network, bucket, repository, log group, compute, queue.

    ``boundary`` is the ARN of the permissions boundary every role gets when the stack is
    made through knot's CloudFormation service role (see ``policy``)."""
    tags = Tags(config)
    resources = {
        **iam_resources(config, tags, boundary),
        **({} if config.subnets else network_resources(tags)),
        **bucket_resources(config, tags),
        **repository_resources(config, tags),
        **log_group_resources(config, tags),
        **compute_resources(config, tags),
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"knot: shared AWS Batch infrastructure (stack {config.stack_name})",
        "Resources": resources,
        "Outputs": _outputs(config),
    }


def recorded_settings(config: KnotConfig) -> dict:
    """The settings the template is built from, as deployed in the ``Settings`` output; a
    later run compares them with its own (``aws/stack.py``)."""
    recorded = {
        "instance_types": list(config.instance_types),
        "min_vcpus": config.min_vcpus,
        "max_vcpus": config.max_vcpus,
        "spot": config.spot,
        "spot_bid_percentage": config.spot_bid_percentage,
        "ami": config.ami,
        "root_volume_gb": config.root_volume_gb,
        "tags": config.tag_dict,
        "files_expiry_days": config.files_expiry_days,
        "buckets": extra_buckets(config),
    }
    # Only with an existing network, so a stack of knot's own VPC keeps its template.
    if config.subnets:
        recorded["subnets"] = list(config.subnets)
        recorded["security_groups"] = list(config.security_groups)
    # Only with classes besides default, so a stack made before classes keeps its template.
    if config.classes:
        recorded["classes"] = {c.name: c.as_record() for c in config.classes}
    return recorded


def template_hash(template: dict) -> str:
    """Stable content hash of a template (canonical JSON, sha256, 16 hex digits)."""
    return short_hash(template, 16)


def stamp(template: dict) -> tuple[dict, str]:
    """The template with its own content hash added as the ``TemplateHash`` output.

    The hash lives in an output, not in a stack tag: CloudFormation copies stack tags onto
    every resource, and a changed tag on a Batch compute environment or job queue forces
    their replacement (cloudformation-coverage-roadmap#2270), which would kill queued jobs
    on every settings change."""
    digest = template_hash(template)
    outputs = {**template["Outputs"], HASH_OUTPUT: {"Value": digest}}
    return {**template, "Outputs": outputs}, digest


def render(template: dict) -> str:
    """Compact JSON for CreateStack/UpdateStack (TemplateBody is capped at 51,200 bytes)."""
    return json.dumps(template, sort_keys=True, separators=(",", ":"))


def _outputs(config: KnotConfig) -> dict:
    values = {
        "BucketName": ref("Bucket"),
        "RepositoryName": ref("Repository"),
        "RepositoryUri": get_att("Repository", "RepositoryUri"),
        "JobQueueArn": ref("JobQueue"),
        "LogGroupName": ref("LogGroup"),
        "JobRoleArn": get_att("JobRole", "Arn"),
    }
    # Each output's Value is an intrinsic function (a dict) or, for the settings, a string.
    outputs: dict[str, dict[str, dict | str]] = {key: {"Value": values[key]} for key in OUTPUTS}
    for klass in config.classes:
        queue = ref(f"{logical_prefix(klass.name)}JobQueue")
        outputs[class_queue_output(klass.name)] = {"Value": queue}
    for klass in config.compute_classes:
        if klass.spot:
            queue = ref(f"{logical_prefix(klass.name)}OnDemandJobQueue")
            outputs[on_demand_queue_output(klass.name)] = {"Value": queue}
    settings = json.dumps(recorded_settings(config), sort_keys=True, separators=(",", ":"))
    outputs[SETTINGS_OUTPUT] = {"Value": settings}
    return outputs
