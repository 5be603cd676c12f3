"""Run Snakemake's own command line in this process and leave a trace for the benchmarks.

``python -m benchmarks.launch <snakemake args>`` behaves like ``snakemake <args>``. With
``KNOT_BENCH_TRACE=<file>`` it also writes, at exit: each status cycle of a remote executor
(start time and number of active jobs), the process's CPU time and peak memory (VmHWM),
and the CPU time spent inside knot's executor (by method, each thread's own CPU clock).
Status cycles are recorded by wrapping ``check_active_jobs`` of whichever executor plugin
runs, so knot and the aws-batch plugin are observed the same way.

With ``KNOT_BENCH_UNPRIVILEGED=1`` the aws-batch plugin's job definitions ask for an
unprivileged container: it always asks for a privileged one, which this machine's Docker
engine cannot start ("unable to apply caps"), and its jobs need no privilege.
"""

from __future__ import annotations

import cProfile
import functools
import json
import os
import resource
import sys
import time


def install_cycle_trace(cycles: list[dict]) -> None:
    from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor

    original_init = RemoteExecutor.__init__

    @functools.wraps(original_init)
    def init(self, *args, **kwargs):
        _wrap_check(type(self), cycles)
        original_init(self, *args, **kwargs)

    RemoteExecutor.__init__ = init


def _wrap_check(cls, cycles: list[dict]) -> None:
    check = cls.check_active_jobs
    if getattr(check, "_traced", False):
        return

    async def traced(self, active_jobs):
        cycle = {"time": time.time(), "active": len(active_jobs)}
        if active_jobs:
            cycles.append(cycle)
        async for job in check(self, active_jobs):
            yield job
        cycle["end"] = time.time()

    traced._traced = True
    cls.check_active_jobs = traced


# Where Snakemake hands control to knot. None of them calls another, so their times add up
# without double counting; what they call (boto3, Snakemake's reporting) is included.
KNOT_ENTRY_POINTS = {
    "executor.Executor": ("__post_init__", "run_jobs", "shutdown"),
    "run.outcome.Outcomes": ("bring_home", "failure"),
    "aws.status.StatusPoller": ("poll",),
}


def install_knot_timer(totals: dict[str, float]) -> None:
    """Add each entry point's thread CPU time to ``totals``; nothing without knot."""
    import importlib

    for path, names in KNOT_ENTRY_POINTS.items():
        module_name, cls_name = path.rsplit(".", 1)
        try:
            module = importlib.import_module(f"snakemake_executor_knot.{module_name}")
        except ImportError:
            return
        cls = getattr(module, cls_name)
        for name in names:
            setattr(cls, name, _thread_timed(getattr(cls, name), name, totals))


def _thread_timed(method, name: str, totals: dict[str, float]):
    @functools.wraps(method)
    def timed(*args, **kwargs):
        start = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.thread_time() - start

    return timed


def peak_rss_kib() -> int | None:
    """VmHWM: the most resident memory this process ever had."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User plus system CPU time of this process (or of its finished children)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def usage() -> dict:
    return {
        "cpu_s": cpu_seconds(),
        "children_cpu_s": cpu_seconds(resource.RUSAGE_CHILDREN),
        "peak_rss_kib": peak_rss_kib(),
    }


def unprivileged_plugin_jobs() -> None:
    from snakemake_executor_plugin_aws_batch.batch_client import BatchClient

    register = BatchClient.register_job_definition

    @functools.wraps(register)
    def unprivileged(self, **kwargs):
        kwargs["containerProperties"] = {**kwargs["containerProperties"], "privileged": False}
        return register(self, **kwargs)

    BatchClient.register_job_definition = unprivileged


def main(argv: list[str]) -> int:
    from snakemake.cli import main as snakemake_main

    trace_path = os.environ.get("KNOT_BENCH_TRACE")
    cycles: list[dict] = []
    install_cycle_trace(cycles)
    knot_cpu: dict[str, float] = {}
    install_knot_timer(knot_cpu)
    if os.environ.get("KNOT_BENCH_UNPRIVILEGED") == "1":
        unprivileged_plugin_jobs()
    sys.argv = ["snakemake", *argv]
    code: int | str | None = 0
    # KNOT_BENCH_PROFILE=FILE: cProfile's statistics of the whole run (every thread's calls
    # made from the main one), to find what grows faster than the jobs.
    profile_path = os.environ.get("KNOT_BENCH_PROFILE")
    profiler = cProfile.Profile() if profile_path else None
    try:
        if profiler is not None:
            profiler.enable()
        snakemake_main()
    except SystemExit as exc:
        code = exc.code
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
    if trace_path:
        with open(trace_path, "w") as fh:
            json.dump({"cycles": cycles, "exit": code, "knot_cpu_s": knot_cpu, **usage()}, fh)
    return code if isinstance(code, int) else (0 if code is None else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
