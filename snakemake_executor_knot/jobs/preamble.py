"""A non-Python script's text for one job, written by Snakemake's own code on the host.

Snakemake runs an R, R Markdown, Julia, Rust or Bash script by writing a copy of it with a
preamble that defines the ``snakemake`` object (``snakemake@input[["x"]]`` in R,
``snakemake_input`` in Bash, ...), then running an interpreter on that copy. The container
has no Snakemake, so knot calls Snakemake's classes here, with the paths the job sees in the
container, and ships the whole text in the spec; ``runtime/preamble.py`` writes it to a file
and runs the command Snakemake would. Python scripts keep knot's own ``snakemake`` object
(``runtime/script.py``), which needs no text per job.
"""

from __future__ import annotations

import io
import os
import posixpath
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakemake.notebook import PythonJupyterNotebook
from snakemake.script import get_source
from snakemake.sourcecache import LocalSourceFile

from ..errors import RuleError
from ..rules.languages import script_class, script_language
from ..rules.source import script_relative
from ..runtime.contract import RULE_DIR
from ..runtime.preamble import NOTEBOOK_PREAMBLE, TMP_FIELD
from .config import rule_config
from .sourcepaths import job_params

if TYPE_CHECKING:
    from snakemake.jobs import Job

# What Snakemake passes as the script's file name while it renders the command; the
# runtime puts its own file there.
_FNAME = "\0knot-script\0"


def script_section(job: Job, path_of, rule_dir: str = RULE_DIR) -> dict:
    """The spec's ``script`` entry. ``path_of`` maps a host path to the job's path in the
    container (``spec.spec_path``); ``rule_dir`` is the image folder holding the rule's
    files (a group's member has its own)."""
    rule = job.rule
    if rule.notebook is not None:
        language, cls = "jupyter_python", KnotNotebook
        section: dict[str, Any] = {"path": script_relative(str(rule.notebook))}
    else:
        language = script_language(rule.name, str(rule.script))
        section = {"path": script_relative(str(rule.script))}
        if language == "python":
            return section
        cls = script_class(language)
    runner = _runner(job, cls, path_of, rule_dir)
    command, arguments = _command(runner)
    section.update(
        language=language,
        filename=runner.path.get_filename(),
        text=_text(runner),
        command=command,
        arguments=arguments,
    )
    return section


def _runner(job: Job, cls, path_of, rule_dir: str):
    """Snakemake's script class ``cls`` for the job, holding the container's view of it."""
    rule = job.rule
    workflow = rule.workflow
    path = str(rule.script or rule.notebook)
    _, source, _, _, _ = get_source(
        path, workflow.sourcecache, rule.basedir, job.wildcards, job.params
    )
    in_image = posixpath.join(rule_dir, script_relative(path))
    files = {name: _mapped(getattr(job, name), path_of) for name in ("input", "output", "log")}
    # tmpdir is a host folder: the job has none (spec.resource_list)
    resources = _without(job.resources, "tmpdir")
    return cls(
        LocalSourceFile(in_image),
        None,
        source,
        rule.basedir,
        files["input"],
        files["output"],
        job_params(job.params, Path.cwd(), workflow),
        job.wildcards,
        job.threads,
        resources,
        files["log"],
        rule_config(rule),
        rule.name,
        None,  # conda_env
        None,  # conda_base_path
        None,  # container_img: the job already runs in the rule's image
        None,  # singularity_args
        None,  # env_modules
        None,  # bench_record
        job.jobid,
        0 if job.benchmark else None,  # as Snakemake's run_wrapper passes it
        True,  # cleanup_scripts
        None,  # shadow_dir
        True,  # is_local
        None,  # runtime_paths
    )


class KnotNotebook(PythonJupyterNotebook):
    """Snakemake's Python notebook, whose preamble cell loads knot's ``snakemake`` object:
    Snakemake's own unpickles Snakemake's classes, which the image does not have."""

    def get_preamble(self):
        return NOTEBOOK_PREAMBLE


def _mapped(files, path_of):
    """A copy of a Snakemake named list of files, each the path the job sees."""
    return files.__class__(toclone=files, custom_map=lambda f: path_of(str(f)))


def _without(resources, name: str):
    kept = {key: value for key, value in resources.items() if key != name}
    return resources.__class__(fromdict=kept)


def _text(runner) -> str:
    out = io.BytesIO()
    try:
        runner.write_script(runner.get_preamble(), out)
    except StopIteration as exc:  # Snakemake's R Markdown split finds no second '---'
        raise RuleError(
            f"Rule '{runner.rulename}': the R Markdown script {runner.path.get_filename()} "
            "has no YAML header ('---' lines) after which Snakemake puts its preamble. "
            "Start the file with a '---' ... '---' header."
        ) from exc
    return out.getvalue().decode()


def _command(runner) -> tuple[str, dict[str, Any]]:
    """The command Snakemake's ``execute_script`` runs, and its format arguments. A path
    it made absolute against this working directory goes back to relative, so that the
    runtime puts it under its own (``relative`` lists those arguments)."""
    captured: dict[str, Any] = {}

    def capture(cmd, read=False, **kwargs):
        if read:  # Snakemake asks `papermill --version`: knot runs notebooks with nbconvert
            raise subprocess.CalledProcessError(1, cmd)
        captured.update(cmd=cmd, kwargs=kwargs)

    runner._execute_cmd = capture
    runner.execute_script(_FNAME)
    command = captured["cmd"]
    arguments = {k: v for k, v in captured["kwargs"].items() if v != _FNAME}
    arguments.pop("is_python_script", None)
    # A notebook runs with a fresh IPYTHONDIR that Snakemake made here; the job makes its
    # own (TMP_FIELD), in the command too when the executed notebook goes nowhere.
    folder = (arguments.pop("additional_envvars", None) or {}).get("IPYTHONDIR")
    if folder:
        command = command.replace(folder, "{" + TMP_FIELD + "}")
    here = os.getcwd()
    relative = []
    for key, value in arguments.items():
        if isinstance(value, str) and (value == here or value.startswith(here + os.sep)):
            arguments[key] = os.path.relpath(value, here)
            relative.append(key)
    return command, {"values": arguments, "relative": relative}
