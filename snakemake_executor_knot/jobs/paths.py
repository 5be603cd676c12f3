"""The paths of a job, checked on the host before anything is created or uploaded.

Outputs, logs and benchmarks must lie inside the working directory: the job can write only
there, and knot downloads only there. Inputs may lie outside it (reference data); knot only
reads them. Every name must be valid UTF-8, since it becomes an S3 key and a JSON string.
A symbolic link inside a directory input is followed when it points inside the working
directory or inside that directory, and refused otherwise: following it would ship files
the user did not name, and skipping it would give the job a different directory. Names
ending in MANIFEST_SUFFIX are knot's (a directory's manifest sits next to it) and refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RuleError
from ..runtime.contract import MANIFEST_SUFFIX
from ..runtime.paths import inside

if TYPE_CHECKING:
    from snakemake.jobs import Job


def check_job_paths(job: Job, workdir: Path) -> None:
    """Every path of a Snakemake job; storage-mode files are checked by their local copy
    (``.snakemake/storage/...``), which is inside the working directory."""
    rule = job.rule.name
    for f in job.input:
        check_name(str(f), rule, "input")
        if os.path.isdir(str(f)):
            directory_files(Path(str(f)), workdir, rule)
    written = [("output", f) for f in job.output] + [("log", f) for f in job.log]
    if job.benchmark:
        written.append(("benchmark", job.benchmark))
    for what, f in written:
        check_name(str(f), rule, what)
        check_written(str(f), workdir, rule, what)


def check_name(path: str, rule: str, what: str) -> None:
    if path.endswith(MANIFEST_SUFFIX):
        raise RuleError(
            f"Rule '{rule}': the {what} file name {path!r} ends in {MANIFEST_SUFFIX!r}, which "
            "knot keeps for the manifest it writes next to each directory() output (in S3, "
            "<directory>.knot-manifest.json): rename the file."
        )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        # os.listdir and friends carry undecodable bytes as lone surrogates.
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise RuleError(
            f"Rule '{rule}': the {what} file name '{shown}' is not valid UTF-8. S3 keys and "
            "job specs need UTF-8 names: rename the file."
        ) from None


def check_written(path: str, workdir: Path, rule: str, what: str) -> None:
    if not inside(workdir, path):
        raise RuleError(
            f"Rule '{rule}': the {what} {path!r} lies outside the working directory "
            f"{workdir} (through '..', an absolute path or a symbolic link). knot jobs write "
            "only inside the working directory: name the file relative to it (in storage "
            "mode, keep --local-storage-prefix inside it)."
        )


def directory_files(folder: Path, workdir: Path, rule: str) -> list[Path]:
    """Every file under a directory input, by its path inside the directory, following
    links that stay inside ``workdir`` or ``folder``; each linked-to folder once."""
    found: list[Path] = []
    seen = {os.path.realpath(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        for name in dirnames + filenames:
            check_link(Path(dirpath, name), folder, workdir, rule)
        # A link back to a folder already walked would loop forever.
        fresh = [d for d in dirnames if os.path.realpath(Path(dirpath, d)) not in seen]
        seen.update(os.path.realpath(Path(dirpath, d)) for d in fresh)
        dirnames[:] = fresh
        found.extend(Path(dirpath, name) for name in filenames)
    return sorted(found)


def check_link(path: Path, folder: Path, workdir: Path, rule: str) -> None:
    check_name(str(path), rule, "input")
    if not path.is_symlink():
        return
    if not path.exists():
        raise RuleError(
            f"Rule '{rule}': the directory input {folder} holds a broken symbolic link "
            f"{path} -> {os.readlink(path)}. Remove it or make it point to a file."
        )
    if not (inside(workdir, path) or inside(folder, path)):
        raise RuleError(
            f"Rule '{rule}': the directory input {folder} holds the symbolic link {path} -> "
            f"{os.path.realpath(path)}, outside both the directory and the working directory "
            f"{workdir}. knot follows links only inside those: copy the target into the "
            "directory, or link to a place inside the working directory."
        )
