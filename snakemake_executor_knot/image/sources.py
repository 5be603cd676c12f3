"""The workflow's own files, shipped into every rule's image at their paths relative to the
working directory, so that ``shell: "python scripts/fit.py ..."``, ``bash bin/tool.sh``,
``python -m pkg.sub.mod`` and a config file read without being declared find them in the
job's working directory (``/work``) as they do locally.

Which files, as Snakemake's own remote executors deploy a workflow's sources:
- in a git repository, the files git tracks under the working directory;
- otherwise, the files under the main Snakefile's folder, and under the folder of every
  other Snakefile the workflow reads (``include:``, a ``module:``'s snakefile), without
  hidden folders (such as ``.snakemake`` and ``.git``) and ``__pycache__``, and their empty
  folders (named with a trailing '/', holding no bytes), which a command may expect to
  exist (git keeps none);
- in both cases, a folder of such a Snakefile outside the working directory (a module kept
  elsewhere), at most OUTSIDE_FILES files of it, and every file the workflow names through
  ``workflow.source_path()``;
and without any file a job of the run reads or writes (inputs travel through S3, outputs
are the jobs' to make). A file outside the working directory lies under EXTERNAL_DIR by its
absolute name, where the job also finds such inputs (``jobs/sourcepaths.py`` gives the
job's params that name). A file over FILE_CAP is left out, with one notice naming it (give
it to the rule as an input instead); all together over TOTAL_CAP is an error before
anything is built.

They become one image layer, the last, so editing one of them rebuilds and pushes only
that layer. The layer's tar is built with fixed owners and times, so equal files give an
equal layer, which a registry already holding it does not receive again.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import RuleError
from ..jobs.group import jobs_of
from ..jobs.sourcepaths import cached_paths, named_source_files, source_name

log = logging.getLogger("knot")

FILE_CAP = 5 * 1024 * 1024
TOTAL_CAP = 50 * 1024 * 1024
OUTSIDE_FILES = 2000  # a folder outside the working directory with more is not shipped
_SKIPPED_FOLDERS = {"__pycache__"}

Files = tuple[tuple[str, bytes], ...]


def workflow_files(
    snakefile_dir: Path,
    workdir: Path,
    excluded: Iterable[str],
    folders: Iterable[Path] = (),
    named: Iterable[str] = (),
) -> Files:
    """The workflow's source files as (path relative to ``workdir``, bytes), sorted.
    ``excluded`` are the run's input and output paths (relative, or absolute); ``folders``
    the folders of the workflow's other Snakefiles; ``named`` the files of
    ``workflow.source_path()`` (absolute paths)."""
    workdir = workdir.resolve()
    tracked = _git_files(workdir)
    found = {name: workdir / name for name in tracked or ()}
    for folder in dict.fromkeys([snakefile_dir.resolve(), *(f.resolve() for f in folders)]):
        if not folder.is_relative_to(workdir):
            found.update(_outside_files(folder, workdir))
        elif tracked is None:
            found.update((path.relative_to(workdir).as_posix(), path) for path in _walk(folder))
            # An empty folder is named with a trailing '/'.
            found.update(
                (path.relative_to(workdir).as_posix() + "/", path)
                for path in _empty_folders(folder)
            )
    for path in named:
        found[source_name(path, workdir)] = Path(path)
    skip = {_relative(path, workdir) for path in excluded}
    chosen = {
        name: path
        for name, path in found.items()
        if name.rstrip("/") not in skip and not _inside_any(name.rstrip("/"), skip)
    }
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


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_FOLDERS)
        for name in sorted(files):
            yield Path(root, name)


def _empty_folders(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_FOLDERS)
        if not dirs and not files and Path(root) != folder:
            yield Path(root)


def _outside_files(folder: Path, workdir: Path) -> dict[str, Path]:
    """A Snakefile's folder outside the working directory, under the names the job has
    for its files; none, with a notice, when it holds more than OUTSIDE_FILES files (a
    Snakefile kept in a home folder, say)."""
    found: dict[str, Path] = {}
    for path in _walk(folder):
        if len(found) == OUTSIDE_FILES:
            log.warning(
                "knot: the folder %s, of a Snakefile outside the working directory %s, "
                "holds more than %d files; its files are not shipped to the jobs. Keep "
                "the module in a folder of its own.",
                folder,
                workdir,
                OUTSIDE_FILES,
            )
            return {}
        found[source_name(str(path), workdir)] = path
    return found


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


def _read(workdir: Path, chosen: dict[str, Path]) -> Files:
    """Each chosen file (name in the job -> path here) that is a regular file."""
    files, large, total = [], [], 0
    for name, path in sorted(chosen.items()):
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


def snakefile_folders(workflow) -> list[Path]:
    """The folders of the Snakefiles the workflow read (the main one, its includes, its
    modules' snakefiles), those on this machine."""
    return [Path(name).parent for name in workflow.linemaps if Path(name).is_file()]


def named_sources(jobs: Iterable) -> set[str]:
    """The files these jobs' params and inputs name through ``workflow.source_path()``; a
    param computed from inputs not made yet is looked at when its job is ready, and its
    file is then in the image only if a folder above already holds it."""
    found: set[str] = set()
    for job in jobs:
        for member in jobs_of(job):
            try:
                params = member.params
            except (FileNotFoundError, OSError):
                params = ()
            found |= named_source_files([*params, *member.input], member.rule.workflow)
            command = getattr(member.rule, "shellcmd", None)
            if command:
                found.update(cached_paths(command, member.rule.workflow))
    return found


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
