"""The settings of one run: the ``--knot-*`` flags plus what the workflow adds to them (the
bucket of an S3 storage prefix, the names of ``envvars:``)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .settings import ExecutorSettings, KnotConfig, bucket_name_problem, parse_settings

if TYPE_CHECKING:
    from snakemake.workflow import Workflow


def knot_config(workflow: Workflow) -> KnotConfig:
    """The parsed flags, plus the default storage prefix's bucket, which the job role must
    be able to reach in storage mode."""
    # Snakemake hands an executor its plugin's own ExecutorSettings.
    settings = workflow.executor_settings
    config = parse_settings(settings if isinstance(settings, ExecutorSettings) else None)
    bucket = storage_bucket(workflow)
    if bucket and bucket not in config.buckets:
        config = dataclasses.replace(config, buckets=(*config.buckets, bucket))
    return config


def storage_bucket(workflow: Workflow) -> str | None:
    """The bucket of an s3:// --default-storage-prefix (storage mode), if any; a name S3
    would refuse is a ConfigError before knot creates anything."""
    storage = workflow.storage_settings  # optional in Snakemake's Workflow: then no prefix
    prefix = (storage.default_storage_prefix if storage is not None else None) or ""
    if not prefix.startswith("s3://"):
        return None
    bucket = prefix[5:].split("/", 1)[0]
    problem = bucket_name_problem(bucket)
    if problem:
        raise ConfigError(
            f"--default-storage-prefix '{prefix}': '{bucket}' is not a valid S3 bucket name "
            f"({problem}). Use a prefix such as 's3://my-results/run1'."
        )
    return bucket


def workflow_envvars(workflow: Workflow) -> list[str]:
    """The names of envvars: and --envvars (Snakemake's own storage-plugin variables,
    which its executor also passes on, are not asked for here)."""
    remote = workflow.remote_execution_settings
    return sorted({*(remote.envvars if remote else ()), *workflow.envvars})
