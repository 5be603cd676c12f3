"""All of the emulator's fixes to moto, applied at once by the serve process (``apply``)."""

from __future__ import annotations

from . import batch, cloudformation, ecr, faults, s3
from .fidelity import Fidelity, configure


def apply(config: Fidelity) -> None:
    """Patch moto (idempotent: a second call only updates the configuration)."""
    if configure(config):
        batch.patch_submit_limits()
        batch.patch_job_environment()
        batch.patch_job_logs()
        batch.patch_job_outcome()
        batch.patch_array_parent()
        ecr.patch_ecr()
        s3.patch_bucket_policy()
        s3.patch_ranged_reads()
        s3.patch_sorted_listing()
        s3.atomic_conditional_writes()
        cloudformation.patch_stacks()
        faults.patch_faults()
