"""The job's log files after its rule ran."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spec import FileItem


def make_missing_logs(items: list[FileItem]) -> None:
    """A log the rule did not write is created empty, as Snakemake does after a job
    (``DAG.handle_log``), whether the job succeeded or failed."""
    for item in items:
        if not item.directory and not os.path.lexists(item.path):
            with open(item.path, "a", encoding="utf-8"):
                pass
