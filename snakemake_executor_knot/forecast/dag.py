"""The jobs a run would submit: ``knot plan``'s command line is Snakemake's own (Snakefile,
targets, config, profiles, ``--knot-*`` flags), parsed by Snakemake's parser, and the DAG is
built with Snakemake's API as ``--dry-run`` builds it, without running anything.

Snakemake's API is slow to import and imports every executor plugin at start-up: it is
imported inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..compute.resources import job_batch_resources
from ..config.settings import ExecutorSettings, KnotConfig, parse_settings
from ..config.workflow import storage_bucket
from ..errors import ConfigError
from .plan import PlannedJob


@dataclass(frozen=True)
class Planned:
    """The DAG's jobs, the run's knot settings and Snakemake's ``--jobs`` limit; the
    working directory the run reads its history from."""

    jobs: list[PlannedJob]
    config: KnotConfig
    max_jobs: int | None
    workdir: Path


def plan_jobs(argv: list[str]) -> Planned:
    """The jobs ``snakemake --executor knot <argv>`` would run (local rules left out)."""
    from snakemake.cli import parse_args

    _, args = parse_args(["--executor", "knot", *argv])
    cwd = os.getcwd()
    try:
        return _build(args)
    # Snakemake's own parsing of --config and similar values raises plain ValueErrors.
    except ValueError as exc:
        raise ConfigError(f"{exc} (in the Snakemake arguments given to knot plan)") from exc
    finally:
        with contextlib.suppress(OSError):
            os.chdir(cwd)


def _build(args) -> Planned:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, Quietness

    plugin = _executor_plugin()
    plugin_settings = plugin.get_settings(args)
    settings = plugin_settings if isinstance(plugin_settings, ExecutorSettings) else None
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            snakefile=_snakefile(args), workdir=args.directory, **_settings(args)
        )
        dag_api = workflow_api.dag(dag_settings=_dag_settings(args))
        # The API builds a DAG only to run, print or summarise it; these are the steps
        # its printing commands take first.
        workflow = dag_api.workflow_api._workflow
        # As a run sets them: which rules are local (and how threads are capped) follows
        # the executor.
        workflow._executor_plugin, workflow.executor_settings = plugin, plugin_settings
        workflow._prepare_dag(
            forceall=args.forceall, ignore_incomplete=True, lock_warn_only=True, nolock=True
        )
        workflow._build_dag()
        config = parse_settings(settings)
        bucket = storage_bucket(workflow)
        if bucket and bucket not in config.buckets:
            config = dataclasses.replace(config, buckets=(*config.buckets, bucket))
        jobs = planned_from_dag(workflow.dag, config)
        return Planned(jobs, config, args.jobs if isinstance(args.jobs, int) else None, Path.cwd())


def planned_from_dag(dag, config: KnotConfig) -> list[PlannedJob]:
    """Each job the DAG needs to run and knot would submit, with its request checked as a
    run checks it (a bad resource is the run's error, before anything)."""
    needed = [job for job in dag.needrun_jobs() if not job.is_local and not job.is_group()]
    ids = {job: job.jobid for job in needed}
    out = []
    for job in needed:
        inputs = tuple(str(f) for f in job.input)
        out.append(
            PlannedJob(
                id=job.jobid,
                rule=job.rule.name,
                after=tuple(ids[d] for d in dag.job_dependencies(job) if d in ids),
                inputs=inputs,
                outputs=tuple(str(f) for f in job.output),
                sizes={path: _local_size(path) for path in inputs},
                request=job_batch_resources(job, config),
            )
        )
    return out


def _local_size(path: str) -> float | None:
    """A local input's bytes (a folder's: its files'); None for what is not here (an
    input in remote storage: the plan asks no storage)."""
    item = Path(path)
    try:
        if item.is_file():
            return float(item.stat().st_size)
        if item.is_dir():
            return float(sum(f.stat().st_size for f in item.rglob("*") if f.is_file()))
    except OSError:
        return None
    return None


def _executor_plugin():
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    return ExecutorPluginRegistry().get_plugin("knot")


def _snakefile(args) -> Path | None:
    return Path(args.snakefile) if args.snakefile else None


def _settings(args) -> dict:
    """The workflow API's settings from Snakemake's parsed flags, as its command line
    builds them for a run."""
    from snakemake.cli import parse_config
    from snakemake.settings.types import ConfigSettings, ResourceSettings, StorageSettings
    from snakemake_interface_storage_plugins.registry import (  # type: ignore[import-untyped]
        StoragePluginRegistry,
    )

    registry = StoragePluginRegistry()
    return {
        "resource_settings": ResourceSettings(
            cores=args.cores,
            nodes=args.jobs,
            resources=args.resources,
            overwrite_threads=args.set_threads,
            overwrite_scatter=args.set_scatter,
            overwrite_resources=args.set_resources,
            default_resources=args.default_resources,
        ),
        "config_settings": ConfigSettings(
            config=parse_config(args.config),
            configfiles=args.configfile,
            config_args=args.config,
        ),
        "storage_settings": StorageSettings(
            default_storage_provider=args.default_storage_provider,
            default_storage_prefix=args.default_storage_prefix,
            local_storage_prefix=args.local_storage_prefix,
        ),
        "storage_provider_settings": {
            name: registry.get_plugin(name).get_settings(args)
            for name in registry.get_registered_plugins()
        },
    }


def _dag_settings(args):
    from snakemake.settings.types import DAGSettings

    return DAGSettings(
        targets=args.targets,
        target_jobs=args.target_jobs,
        forcetargets=args.force,
        forceall=args.forceall,
        forcerun=args.forcerun,
        until=args.until,
        omit_from=args.omit_from,
        allowed_rules=args.allowed_rules,
        rerun_triggers=args.rerun_triggers,
    )
