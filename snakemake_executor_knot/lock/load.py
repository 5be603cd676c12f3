"""What ``knot lock`` does: find the Snakefile, load its workflow with Snakemake's API
without running it, look up the base image's digest in the local Docker engine, and write
knot.lock for the workflow's rules.

Snakemake's API and the docker SDK are slow to import, and Snakemake imports every installed
executor plugin at start-up: both are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..compute.platform import platform_for
from ..config.settings import KnotConfig, resolve_base_image
from ..errors import ConfigError, DockerError, RuleError
from ..image.apt import parse_simulation, simulate_command
from .conda import (
    conda_lock_path,
    lock_environments,
    runs_in_locked_python,
    write_conda_lock,
)
from .format import Lock, write_lock
from .workflow import HashCache, build_lock, lock_path, locked_rules, static_packages, static_values


def write_workflow_lock(
    snakefile: Path, config: KnotConfig, wrapper_prefix: str | None = None
) -> tuple[Path, Lock]:
    """Write knot.lock next to ``snakefile`` for its workflow's rules, the platform of
    ``config``'s instance types and its base image; the file's path and the lock. The
    wrappers' environments come from ``wrapper_prefix``, as a run's ``--wrapper-prefix``."""
    workflow = load_workflow(snakefile, wrapper_prefix)
    platform = platform_for(config.instance_types)
    # conda: environments first, pinned in their own file: a Python script that runs with
    # its environment's Python needs none of its imports in knot.lock.
    environments = lock_environments(workflow, platform)
    if environments:
        write_conda_lock(conda_lock_path(workflow), platform, environments)
    in_conda_python = runs_in_locked_python(workflow)
    bases = locked_rules(workflow, static_packages, static_values(workflow.config), in_conda_python)
    base = local_base(resolve_base_image(config))
    resolver = apt_resolver(base.name, platform)
    lock = build_lock(bases, platform=platform, base_image=base, hashes=HashCache(), apt=resolver)
    path = lock_path(workflow)
    write_lock(path, lock)
    return path, lock


def find_snakefile(given: Path | None) -> Path:
    candidates = [given] if given else [Path("Snakefile"), Path("workflow", "Snakefile")]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise ConfigError(
        f"No Snakefile at {' or '.join(map(str, candidates))}. Run 'knot lock' in the "
        "workflow's folder, or name the file with --snakefile PATH."
    )


def load_workflow(snakefile: Path, wrapper_prefix: str | None = None):
    """Snakemake's Workflow for ``snakefile``, parsed and checked but not run. Snakemake
    changes into the working directory; the caller's is restored."""
    # Snakemake's API takes about a second to import: only 'knot lock' needs it.
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings, WorkflowSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings()) as api:
            workflow_api = api.workflow(
                ResourceSettings(),
                workflow_settings=WorkflowSettings(wrapper_prefix=wrapper_prefix),
                snakefile=snakefile,
                workdir=snakefile.parent,
            )
            # The API offers no public way to the parsed Workflow short of running it.
            return workflow_api._workflow
    finally:
        with contextlib.suppress(OSError):
            os.chdir(cwd)


def local_base(name: str):
    # The docker SDK is slow to import, and only 'knot lock' needs it here.
    from ..image.builder import docker_client, local_base_image

    return local_base_image(docker_client(), name)


def apt_resolver(base: str, platform: str):
    """knot_apt's closure, pinned: apt-get's simulation, run in the base image."""

    def resolve(packages: tuple[str, ...], rule: str) -> tuple[str, ...]:
        from ..image.builder import docker_client, run_as_root

        try:
            output = run_as_root(docker_client(), base, simulate_command(packages), platform)
        except DockerError as exc:
            raise RuleError(
                f"Rule '{rule}': apt-get could not resolve knot_apt ({' '.join(packages)}): "
                f"{exc}. Check the package names (apt-cache search NAME)."
            ) from exc
        return parse_simulation(output, rule)

    return resolve


__all__ = ["apt_resolver", "find_snakefile", "load_workflow", "local_base", "write_workflow_lock"]
