"""Snakemake discovers executor plugins by this package name; the code lives in
``snakemake_executor_knot``."""

from snakemake_executor_knot.config.settings import ExecutorSettings, common_settings
from snakemake_executor_knot.executor import Executor

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
