"""Snakemake discovers executor plugins by this package name; the code lives in
``snakemake_executor_knot``."""

from snakemake_executor_knot.executor import Executor
from snakemake_executor_knot.settings import ExecutorSettings, common_settings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
