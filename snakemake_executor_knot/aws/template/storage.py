"""The template's storage: knot's bucket (private, TLS only, with lifecycle rules for
job specs, usage documents and local copies), the ECR repository of rule images with its
lifecycle policy, and the log group of job logs.
"""

from __future__ import annotations

import json

from ...config.settings import KnotConfig
from ...runtime.contract import SPEC_FOLDER, USAGE_FOLDER
from .common import (
    Tags,
    checkov_skips,
    get_att,
    log_group_name,
    ref,
    repository_name,
    resource,
    sub,
)

# Job specs, and the config objects they reference (jobs/config.py), live under this prefix
# of knot's bucket, which jobs may read but not write, and expire after SPEC_EXPIRY_DAYS, as
# do the usage documents jobs write next to them (runtime/contract.py).
SPEC_PREFIX = f"knot/{SPEC_FOLDER}/"
USAGE_PREFIX = f"knot/{USAGE_FOLDER}/"
SPEC_EXPIRY_DAYS = 7
# Local-mode copies of the user's files live here; they expire after
# --knot-files-expiry-days (a later run uploads again what it still needs).
FILES_PREFIX = "knot/files/"
LOG_RETENTION_DAYS = 30
UNTAGGED_IMAGE_DAYS = 1
# Tagged images kept in the repository, newest pushes first. Tags are content hashes and
# the stack is shared by workflows whose rules it never sees, so a lifecycle policy (whose
# rules select fixed tag prefixes) cannot count per rule: the bound is per repository.
MAX_IMAGES = 1000


def bucket_resources(config: KnotConfig, tags: Tags) -> dict:
    encryption = {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    bucket = {
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [encryption]},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {"Rules": _lifecycle_rules(config)},
        "Tags": tags.as_list(),
    }
    return {
        "Bucket": resource(
            "AWS::S3::Bucket", bucket, Metadata=checkov_skips("CKV_AWS_18", "CKV_AWS_21")
        ),
        "BucketPolicy": resource(
            "AWS::S3::BucketPolicy", {"Bucket": ref("Bucket"), "PolicyDocument": _tls_only()}
        ),
    }


def _lifecycle_rules(config: KnotConfig) -> list[dict]:
    return [
        {
            "Id": "expire-job-specs",
            "Status": "Enabled",
            "Prefix": SPEC_PREFIX,
            "ExpirationInDays": SPEC_EXPIRY_DAYS,
        },
        {
            "Id": "expire-usage-documents",
            "Status": "Enabled",
            "Prefix": USAGE_PREFIX,
            "ExpirationInDays": SPEC_EXPIRY_DAYS,
        },
        {
            "Id": "expire-local-copies",
            "Status": "Enabled",
            "Prefix": FILES_PREFIX,
            "ExpirationInDays": config.files_expiry_days,
        },
        {
            "Id": "abort-incomplete-uploads",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": SPEC_EXPIRY_DAYS},
        },
    ]


def _tls_only() -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [get_att("Bucket", "Arn"), sub("${Bucket.Arn}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def ecr_lifecycle_rules() -> list[dict]:
    """Untagged layers go after a day; of the tagged images, the newest MAX_IMAGES stay.
    ECR evaluates a ``tagStatus: any`` rule last, so it must have the highest priority."""
    untagged = {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": UNTAGGED_IMAGE_DAYS,
    }
    bounded = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": MAX_IMAGES}
    return [
        {
            "rulePriority": 1,
            "description": "expire untagged images",
            "selection": untagged,
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"keep the newest {MAX_IMAGES} images",
            "selection": bounded,
            "action": {"type": "expire"},
        },
    ]


def repository_resources(config: KnotConfig, tags: Tags) -> dict:
    text = json.dumps({"rules": ecr_lifecycle_rules()}, sort_keys=True)
    repository = {
        "RepositoryName": repository_name(config.stack_name),
        "ImageScanningConfiguration": {"ScanOnPush": True},
        # Tags are content hashes: a tag never has to point at other content.
        "ImageTagMutability": "IMMUTABLE",
        "EncryptionConfiguration": {"EncryptionType": "AES256"},
        "LifecyclePolicy": {"LifecyclePolicyText": text},
        # On AWS, deleting the stack also deletes the images (moto ignores it,
        # and teardown empties the repository itself anyway).
        "EmptyOnDelete": True,
        "Tags": tags.as_list(),
    }
    return {
        "Repository": resource(
            "AWS::ECR::Repository", repository, Metadata=checkov_skips("CKV_AWS_136")
        )
    }


def log_group_resources(config: KnotConfig, tags: Tags) -> dict:
    group = {
        "LogGroupName": log_group_name(config.stack_name),
        "RetentionInDays": LOG_RETENTION_DAYS,
        "Tags": tags.as_list(),
    }
    return {
        "LogGroup": resource("AWS::Logs::LogGroup", group, Metadata=checkov_skips("CKV_AWS_158"))
    }
