"""A rule's ``conda:`` directive as Snakemake reads it: whether the run uses it at all
(``--software-deployment-method conda``), and which environment file it names.

knot builds one image per rule, so the file must be the same for every job of the rule:
a function of wildcards or a path with wildcards is refused, as is a named environment
or an environment folder, which exist only on this machine. All before anything is built.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.sourcecache import LocalSourceFile, SourceFile, infer_source_file

from ..errors import RuleError

if TYPE_CHECKING:
    from snakemake.workflow import Workflow

ENV_SUFFIXES = (".yaml", ".yml")


def conda_enabled(workflow: Workflow) -> bool:
    """Whether the run was started with ``--software-deployment-method conda`` (or
    ``--use-conda``), as Snakemake decides it."""
    settings = getattr(workflow, "deployment_settings", None)
    methods = getattr(settings, "deployment_method", None) or ()
    return DeploymentMethod.CONDA in methods


def spare_host_conda(workflow: Workflow, placeholder: Path) -> None:
    """Let the run's local jobs (``rule all``) run without conda on the host: with the
    flag, Snakemake asks ``conda info`` for its base path before every local job, and
    fails where there is no conda, though knot builds every remote rule's environment
    without one. A local rule with its own conda: still needs conda here."""
    settings = workflow.deployment_settings
    if settings is None or not conda_enabled(workflow):
        return
    if not settings.conda_base_path and not shutil.which("conda"):
        settings.conda_base_path = placeholder


def ignored_notice(rules: Iterable) -> str | None:
    """The one notice for rules whose ``conda:`` this run ignores, as --executor local
    ignores it without the flag; None when there are none."""
    names = sorted({rule.name for rule in rules if rule.conda_env is not None})
    if not names:
        return None
    return (
        f"knot: ignoring 'conda:' of rule{'s' if len(names) > 1 else ''} "
        f"{', '.join(names)}, as Snakemake does without --software-deployment-method conda "
        "(or --use-conda); add that flag to build each environment into its rule's image."
    )


def conda_file(workflow: Workflow, rule) -> tuple[str, str] | None:
    """The rule's environment file: (path as shown, its text); None without ``conda:``."""
    spec = rule.conda_env
    if spec is None:
        return None
    if isinstance(spec, SourceFile):  # a wrapper's environment.yaml, set by Snakemake
        shown = spec.get_path_or_uri(secret_free=True)
        return shown, _read_source(workflow, rule, spec, shown)
    if callable(spec):
        raise _error(
            rule.name,
            "is given as a function; knot builds one image per rule, so the file must be "
            'fixed. Name the file itself (conda: "envs/tool.yaml"), or split the rule per '
            "environment",
        )
    text = str(spec)
    if "{" in text:
        raise _error(
            rule.name,
            f"'{text}' has wildcards; knot builds one image per rule, so the file must be "
            "fixed. Name one file, or split the rule per environment",
        )
    if not text.endswith(ENV_SUFFIXES):
        raise _error(
            rule.name,
            f"'{text}' names an environment on this machine (by name or folder), which knot "
            "cannot copy into the rule's image. Export it (conda env export --from-history "
            "-n NAME > envs/NAME.yaml) and name that file",
        )
    # Relative to the Snakefile that defines the rule, as Snakemake resolves it.
    return text, _read_source(workflow, rule, infer_source_file(text, rule.basedir), text)


def _read_source(workflow: Workflow, rule, source: SourceFile, path: str) -> str:
    # A remote Snakefile's or wrapper's file is read through Snakemake's source cache.
    try:
        if isinstance(source, LocalSourceFile):
            return Path(source.get_path_or_uri(secret_free=True)).read_text(encoding="utf-8")
        with workflow.sourcecache.open(source) as handle:
            data = handle.read()
        return data.decode() if isinstance(data, bytes) else data
    except (OSError, UnicodeDecodeError, WorkflowError) as exc:
        raise _error(
            rule.name,
            f"'{path}' cannot be read ({exc}); a path is relative to the Snakefile that "
            "defines the rule, a wrapper's environment.yaml lies next to its wrapper.py",
        ) from exc


def _error(rule: str, what: str) -> RuleError:
    return RuleError(f"Rule '{rule}': its conda: environment {what}.")
