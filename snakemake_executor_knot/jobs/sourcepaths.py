"""Files the workflow names through ``workflow.source_path()``, under the name a job sees.

Snakemake hands such a file over as its copy in the host's source cache, a temporary folder
of this run (``.../snakemake-runtime-cache/tmpXXXX/file/<original path>``), flagged with the
original path. A job cannot see the host's cache. It has the workflow's source files in its
image instead (``image/sources.py``): a file inside the working directory at its path
relative to it, one outside it (a module's folder elsewhere) under EXTERNAL_DIR by its
absolute name, where the job also stages inputs from outside the working directory. So a
param or input naming such a file names that place in the job, a path relative to the job's
working directory (which stays the same from run to run, so a job's spec does too).
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from snakemake.common import is_local_file
from snakemake.io import get_flag_value, is_flagged

try:  # Snakemake 9.x moved it from snakemake.io (9.0) to snakemake.iocontainers
    from snakemake.iocontainers import Namedlist
except ImportError:  # pragma: no cover - the lowest supported Snakemake
    from snakemake.io import Namedlist

from ..runtime.contract import EXTERNAL_DIR, WORKDIR

_FLAG = "sourcecache_entry"


def source_name(path: str, workdir: Path) -> str:
    """A local source file's name in the job: relative to the working directory, or, for
    one outside it, under EXTERNAL_DIR by its absolute name."""
    full = os.path.abspath(path)
    relative = _relative_inside(full, workdir)
    if relative is None:
        return posixpath.join(EXTERNAL_DIR, Path(full).as_posix().lstrip("/"))
    return relative


def _relative_inside(full: str, workdir: Path) -> str | None:
    """The absolute path ``full`` relative to ``workdir``, '/'-separated; None outside it."""
    relative = os.path.relpath(full, workdir)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return Path(relative).as_posix()


def original_path(value: object) -> str | None:
    """The local file ``workflow.source_path()`` named, for a value it returned; None for
    any other value, and for a remote source (a module from GitHub), which has no file here."""
    if not isinstance(value, str) or not is_flagged(value, _FLAG):
        return None
    original = get_flag_value(value, _FLAG)
    if not isinstance(original, str) or not is_local_file(original):
        return None
    return os.path.abspath(original)


def job_value(value: object, workdir: Path, workflow=None) -> object:
    """``value`` as the job sees it: a source file's name in the job, an absolute path
    inside the working directory at the same place under the job's, anything else as is.
    Snakemake's evaluated params are plain strings, without the flag: with ``workflow``, a
    string naming its cache of this run is mapped by that name (``job_text``)."""
    original = original_path(value)
    if original is not None:
        return source_name(original, workdir)
    inside = _inside_workdir(value, workdir)
    if inside is not None:
        return posixpath.normpath(posixpath.join(WORKDIR, inside))
    if workflow is not None and isinstance(value, str):
        return job_text(value, workflow, workdir)
    return value


def _inside_workdir(value: object, workdir: Path) -> str | None:
    """For an absolute path inside ``workdir`` (a param built from ``workflow.basedir``,
    say), its path relative to it; None for any other value."""
    if not isinstance(value, str) or not os.path.isabs(value) or "\n" in value:
        return None
    return _relative_inside(os.path.normpath(value), workdir)


def job_params(params: Namedlist, workdir: Path, workflow=None) -> Namedlist:
    """The job's params with each source file under its name in the job (a copy with the
    same names; the job's own params are left alone)."""
    mapped = [job_value(value, workdir, workflow) for value in params]
    if all(new is old for new, old in zip(mapped, params, strict=True)):
        return params
    return _renamed(params, mapped)


def job_files(files: Namedlist, workdir: Path) -> Namedlist:
    """A job's files (input, output, log) by the names its container gives them: a source
    file's, one inside the working directory relative to it, one outside it (an input:
    reference data) at its absolute name under EXTERNAL_DIR, where the job stages it."""
    return _renamed(files, [_job_file(f, workdir) for f in files])


def _job_file(path: str, workdir: Path) -> str:  # the item itself: str() drops its flags
    original = original_path(path)
    if original is not None:
        return source_name(original, workdir)
    name = source_name(path, workdir)  # as jobs/spec.py's spec_path, which the runtime reads
    if name.startswith(EXTERNAL_DIR + "/"):
        return posixpath.join(WORKDIR, name)
    return name if os.path.isabs(path) else path


def _renamed(values: Namedlist, items: list) -> Namedlist:
    """A copy of ``values`` holding ``items``, with the same names."""
    renamed = type(values)(items)
    for name, (start, end) in (getattr(values, "_names", {}) or {}).items():
        renamed._set_name(name, start, end)
    return renamed


def cached_paths(text: str, workflow) -> list[str]:
    """The files a text (a shell command built while the Snakefile was read, such as
    ``"cat " + workflow.source_path("x") + " > {output}"``) names in Snakemake's cache of
    this run, by their original paths."""
    root = _cache_root(workflow)
    if not root or root not in text:
        return []
    return [match.group(1) for match in _cached(root).finditer(text)]


def job_text(text: str, workflow, workdir: Path) -> str:
    """``text`` with each file of Snakemake's cache of this run named as the job has it."""
    root = _cache_root(workflow)
    if not root or root not in text:
        return text
    return _cached(root).sub(lambda match: source_name(match.group(1), workdir), text)


def _cache_root(workflow) -> str | None:
    # A local file's copy lies at <runtime cache>/file/<its absolute path> (sourcecache.py).
    cache = getattr(getattr(workflow, "sourcecache", None), "runtime_cache_path", None)
    return posixpath.join(str(cache), "file") if cache else None


def _cached(root: str) -> re.Pattern:
    return re.compile(re.escape(root) + r"(/[^\s'\";|&<>()]+)")


def named_source_files(values: object, workflow=None) -> set[str]:
    """The local files among ``values`` (a job's params and inputs) that came from
    ``workflow.source_path()``: the image must hold them (image/sources.py). With
    ``workflow``, strings naming its cache count too."""
    found = set()
    for value in values if isinstance(values, list | tuple | Namedlist) else (values,):
        original = original_path(value)
        if original is not None:
            found.add(original)
        elif workflow is not None and isinstance(value, str):
            found.update(cached_paths(value, workflow))
    return found
