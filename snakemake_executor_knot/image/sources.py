"""The workflow's own files, shipped into every rule's image at their paths relative to the
working directory, so that ``shell: "python scripts/fit.py ..."``, ``bash bin/tool.sh``,
``python -m pkg.sub.mod`` and a config file read without being declared find them in the
job's working directory (``/work``) as they do locally.

Which files, as Snakemake's own remote executors deploy a workflow's sources:
- in a git repository, the files git tracks under the working directory;
- otherwise, the files under the main Snakefile's folder, without hidden folders (such as
  ``.snakemake`` and ``.git``) and ``__pycache__``, and its empty folders (named with a
  trailing '/', holding no bytes), which a command may expect to exist (git keeps none);
and in both cases without any file a job of the run reads or writes (inputs travel
through S3, outputs are the jobs' to make) and without files outside the working directory.
A file over FILE_CAP is left out, with one notice naming it (give it to the rule as an
input instead); all together over TOTAL_CAP is an error before anything is built.

They become one image layer, the last, so editing one of them rebuilds and pushes only
that layer. The layer's tar is built with fixed owners and times, so equal files give an
equal layer, which a registry already holding it does not receive again.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ..errors import RuleError
from ..jobs.group import jobs_of

log = logging.getLogger("knot")

FILE_CAP = 5 * 1024 * 1024
TOTAL_CAP = 50 * 1024 * 1024
_SKIPPED_FOLDERS = {"__pycache__"}

Files = tuple[tuple[str, bytes], ...]


def workflow_files(snakefile_dir: Path, workdir: Path, excluded: Iterable[str]) -> Files:
    """The workflow's source files as (path relative to ``workdir``, bytes), sorted.
    ``excluded`` are the run's input and output paths (relative, or absolute)."""
    workdir = workdir.resolve()
    names = _git_files(workdir)
    if names is None:
        names = _walked_files(snakefile_dir.resolve(), workdir)
    skip = {_relative(path, workdir) for path in excluded}
    chosen = [
        name
        for name in names
        if name.rstrip("/") not in skip and not _inside_any(name.rstrip("/"), skip)
    ]
    return _read(workdir, chosen)


def _git_files(workdir: Path) -> list[str] | None:
    """git's tracked files under ``workdir``, relative to it; None outside a repository
    (or without git)."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--recurse-submodules", "."],
            cwd=workdir,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [name for name in done.stdout.decode(errors="surrogateescape").split("\0") if name]


def _walked_files(folder: Path, workdir: Path) -> list[str]:
    if not folder.is_relative_to(workdir):
        log.warning(
            "knot: the Snakefile's folder %s is outside the working directory %s; its files "
            "are not shipped to the jobs.",
            folder,
            workdir,
        )
        return []
    names = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_FOLDERS)
        for name in sorted(files):
            names.append(Path(root, name).relative_to(workdir).as_posix())
        if not dirs and not files and Path(root) != folder:
            names.append(Path(root).relative_to(workdir).as_posix() + "/")
    return names


def _relative(path: str, workdir: Path) -> str:
    if os.path.isabs(path):
        return os.path.relpath(path, workdir)
    return os.path.normpath(path)


def _inside_any(name: str, folders: set[str]) -> bool:
    """Inside a directory() input or output."""
    parent = os.path.dirname(name)
    while parent:
        if parent in folders:
            return True
        parent = os.path.dirname(parent)
    return False


def _read(workdir: Path, names: list[str]) -> Files:
    files, large, total = [], [], 0
    for name in sorted(set(names)):
        path = workdir / name
        if name.endswith("/"):  # an empty folder
            if path.is_dir() and not path.is_symlink():
                files.append((name, b""))
            continue
        if path.is_symlink() or not path.is_file():  # links and deleted tracked files
            continue
        size = path.stat().st_size
        if size > FILE_CAP:
            large.append(f"{name} ({size / 2**20:.1f} MiB)")
            continue
        total += size
        if total > TOTAL_CAP:
            raise RuleError(
                f"The workflow's source files under {workdir} add up to more than "
                f"{TOTAL_CAP // 2**20} MiB (at {name}); knot ships them in every rule's "
                "image. Make the workflow a git repository (only tracked files are "
                "shipped), or move data out of the workflow's folder and name it as inputs."
            )
        files.append((name, path.read_bytes()))
    if large:
        log.warning(
            "knot: left out of the jobs' working directory (over %d MiB each; name them as "
            "rule inputs if a job reads them): %s",
            FILE_CAP // 2**20,
            ", ".join(large),
        )
    return tuple(files)


def job_paths(jobs: Iterable) -> set[str]:
    """Every input and output path of these Snakemake jobs (a group's members included)."""
    paths: set[str] = set()
    for job in jobs:
        for member in jobs_of(job):
            for item in (*member.input, *member.output, *(member.log or ())):
                paths.add(str(item))
            if member.benchmark:
                paths.add(str(member.benchmark))
    return paths
