"""The helpers every part of the template shares: CloudFormation's intrinsic functions,
the stack's tags, the resource shape, checkov's skips, and the names other modules derive
from the stack name (IAM policies name the repository and the log group too).

Findings of the checkov linter that knot accepts are justified on the resource itself, in
checkov's ``Metadata: checkov: skip`` form (see ``SKIPS``); tests/aws runs checkov.
"""

from __future__ import annotations

from ...config.settings import KnotConfig
from ..tags import STACK_TAG

__all__ = ["STACK_TAG"]  # the stack's tag, imported from here by older modules


def ref(name: str) -> dict:
    return {"Ref": name}


def get_att(name: str, attribute: str) -> dict:
    return {"Fn::GetAtt": [name, attribute]}


def sub(text: str) -> dict:
    return {"Fn::Sub": text}


class Tags:
    """The user's tags plus ``knot:stack``, in the two shapes CloudFormation uses. The stack
    carries them too, so keep them to tags that rarely change: CloudFormation copies stack
    tags onto every resource."""

    def __init__(self, config: KnotConfig) -> None:
        self.mapping = {**config.tag_dict, STACK_TAG: config.stack_name}

    def as_list(self) -> list[dict]:
        return [{"Key": k, "Value": v} for k, v in sorted(self.mapping.items())]

    def as_map(self) -> dict:
        return dict(sorted(self.mapping.items()))


def resource(kind: str, properties: dict, **extra) -> dict:
    """One template resource; ``extra`` holds DependsOn, Metadata and the like."""
    return {"Type": kind, "Properties": properties, **extra}


def checkov_skips(*ids: str) -> dict:
    """checkov's skip comments for a resource: one reason per finding, from SKIPS."""
    return {"checkov": {"skip": [{"id": i, "comment": SKIPS[i]} for i in ids]}}


# Each checkov finding knot accepts, and why, in one sentence.
SKIPS = {
    "CKV_AWS_18": "Access logs need a second bucket; this one holds only transient copies and "
    "specs, and CloudTrail data events audit it account-wide if wanted.",
    "CKV_AWS_21": "Versioning would keep every overwritten copy and spec forever, defeating "
    "the lifecycle expiry, and the contents are reproducible by re-running the workflow.",
    "CKV_AWS_136": "Images are encrypted with AES256; a customer-managed KMS key would cost a "
    "key per stack and add no control that the repository's IAM policies lack.",
    "CKV_AWS_158": "Logs are encrypted by CloudWatch by default; a customer-managed KMS key "
    "would need a key policy for the logs service and add no control IAM lacks.",
}


def repository_name(stack_name: str) -> str:
    return f"{stack_name.lower()}-rules"


def log_group_name(stack_name: str) -> str:
    return f"/knot/{stack_name}"
