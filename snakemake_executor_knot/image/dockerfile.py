"""The pure half of a rule's image: its spec, Dockerfile, build context and content-hash tag.

Layer order is chosen for docker's layer cache: user and venv (same for every rule on a
base), then requirements (shared by rules with equal requirements), then knot's runtime,
then the rule's own files last, so editing a run block rebuilds only that thin layer.
The layout inside the image is fixed in docs/internals.md, "The image".
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import posixpath
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__
from ..runtime.contract import (
    CONDA_PREFIX_ENV,
    KNOT_ROOT,
    KNOT_UID,
    LIB,
    RUNTIME_COMMAND,
    RUNTIME_PACKAGE,
    VENV,
    WORKDIR,
)
from . import conda as condaenv
from .apt import apt_block
from .conda import CondaLayer
from .container import copy_interpreter, interpreter_stage

log = logging.getLogger("knot.image")

# Bump when the rendered Dockerfile changes meaning, so old tags are not reused.
TEMPLATE_VERSION = "1"

DEFAULT_PLATFORM = "linux/amd64"
PIP_INDEX_VARS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
RUNTIME_DIR = Path(__file__).parent.parent / "runtime"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONDA_CONTEXT = "conda"  # the build context's folder holding the installed environment


@dataclass(frozen=True)
class ImageSpec:
    """What one rule's image is made of. ``files`` maps absolute paths under /opt/knot
    in the image to their bytes; a dict is accepted and stored as a sorted tuple."""

    rule: str
    base_image: str
    requirements: tuple[str, ...] = ()
    files: tuple[tuple[str, bytes], ...] = ()
    from_container: bool = False  # the base is the rule's own `container:` image
    # With a container: knot's base image, on which knot's Python and the rule's venv are
    # made and then copied into the container (image/container.py). None: the container's
    # own python3 makes the venv.
    interpreter_image: str | None = None
    apt: tuple[str, ...] = ()  # Debian packages (knot_apt), installed after the user setup
    # The workflow's source files (image/sources.py): path relative to /work -> bytes; a
    # path ending in '/' is an empty folder.
    workdir_files: tuple[tuple[str, bytes], ...] = ()
    platform: str = DEFAULT_PLATFORM
    # Locked: ``requirements`` is knot.lock's whole closure, boto3 for the runtime included,
    # installed with --no-deps so nothing outside the lock enters the venv.
    locked: bool = False
    require_hashes: bool = False  # every line carries --hash (pip's mode is all or nothing)
    conda: CondaLayer | None = None  # the rule's solved conda: environment

    def __post_init__(self) -> None:
        files = self.files.items() if isinstance(self.files, Mapping) else self.files
        files = tuple(sorted((str(path), bytes(data)) for path, data in files))
        for path, _ in files:
            _check_image_path(path)
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "requirements", tuple(self.requirements))
        object.__setattr__(self, "apt", tuple(self.apt))
        for path, _ in self.workdir_files:
            _check_workdir_path(path)


def _check_image_path(path: str) -> None:
    normal = posixpath.normpath(path)
    if normal != path or not path.startswith(f"{KNOT_ROOT}/"):
        raise ValueError(f"rule file path {path!r} must be a normalised path under {KNOT_ROOT}/")


def _check_workdir_path(path: str) -> None:
    path = path.removesuffix("/")  # an empty folder's
    normal = posixpath.normpath(path)
    if normal != path or path.startswith(("/", "../")) or path in (".", ".."):
        raise ValueError(f"workflow file path {path!r} must be normalised and relative")


def runtime_files() -> dict[str, bytes]:
    """The runtime package's .py files by name relative to the package; {} when absent."""
    return dict(_read_runtime(RUNTIME_DIR))


@functools.cache
def _read_runtime(directory: Path) -> tuple[tuple[str, bytes], ...]:
    # Read once per process: the tag and the build context must see the same bytes even
    # if the source is edited while a run builds images.
    if not directory.is_dir():
        return ()
    return tuple(
        (path.relative_to(directory).as_posix(), path.read_bytes())
        for path in sorted(directory.rglob("*.py"))
        if "__pycache__" not in path.parts
    )


def host_boto3_version() -> str:
    return importlib.metadata.version("boto3")


def requirements_txt(requirements: Iterable[str]) -> bytes:
    """Sorted and deduplicated, so equal requirement sets give byte-equal files and so
    share docker's cached pip layer."""
    lines = sorted({r.strip() for r in requirements if r.strip()})
    return "".join(f"{line}\n" for line in lines).encode()


def render_dockerfile(spec: ImageSpec, boto3_version: str | None = None) -> str:
    venv = _venv_block(None if spec.locked else boto3_version or host_boto3_version())
    requirements = _requirements_block(spec)
    # The conda environment is its own layer, before the rule's pins and code, so that
    # editing those leaves it cached.
    conda = (
        condaenv.dockerfile_block(spec.conda, CONDA_CONTEXT, PIP_INDEX_VARS) if spec.conda else ""
    )
    if spec.from_container and spec.interpreter_image:
        venv_steps = "\n\n".join(block for block in (venv, requirements) if block)
        head = [
            interpreter_stage(spec.interpreter_image, venv_steps),
            f"FROM {spec.base_image}",
            _system_block(check_python=False),
            copy_interpreter(),
            conda,
        ]
    else:
        head = [
            f"FROM {spec.base_image}",
            _system_block(),
            apt_block(spec.apt),
            venv,
            conda,
            requirements,
        ]
    blocks = [
        *head,
        f"COPY runtime/ {LIB}/{RUNTIME_PACKAGE}/",
        f"COPY rule/ {KNOT_ROOT}/" if spec.files else "",
        # Last: editing a workflow file rebuilds (and pushes) this layer only.
        f"COPY --chown={KNOT_UID}:{KNOT_UID} workdir/ {WORKDIR}/" if spec.workdir_files else "",
        _final_block(spec),
    ]
    return "\n\n".join(block for block in blocks if block) + "\n"


def _system_block(check_python: bool = True) -> str:
    # A rule's own container may end as a non-root USER; the setup steps need root.
    # Minimal bases (alpine, busybox-like) lack useradd, so fall back to /etc/passwd.
    # --non-unique: some bases (ubuntu:24.04) already own uid 1000.
    check = (
        """command -v python3 >/dev/null 2>&1 || { \\
      echo "knot: the base image has no python3 on PATH; pick a base image with python3" >&2; \\
      exit 1; }; \\
    """
        if check_python
        else ""
    )
    return f"""USER root
RUN set -e; \\
    {check}if ! id knot >/dev/null 2>&1; then \\
      if command -v useradd >/dev/null 2>&1; then \\
        useradd --non-unique --uid {KNOT_UID} --create-home --shell /bin/sh knot; \\
      else \\
        echo "knot:x:{KNOT_UID}:{KNOT_UID}:knot:/home/knot:/bin/sh" >> /etc/passwd; \\
        echo "knot:x:{KNOT_UID}:" >> /etc/group; \\
        mkdir -p /home/knot; chown {KNOT_UID}:{KNOT_UID} /home/knot; \\
      fi; \\
    fi; \\
    mkdir -p /work {LIB}; \\
    chown knot /work"""


def _venv_block(boto3_version: str | None) -> str:
    # A venv, because Debian's python3 marks its pip as externally managed (PEP 668).
    # The ARGs come after the user layer so a changed index URL keeps that layer cached.
    # A locked image gets boto3 from the lock's lines instead: its dependencies float here.
    args = "\n".join(f"ARG {name}" for name in PIP_INDEX_VARS)
    venv = f"RUN python3 -m venv {VENV}"
    if boto3_version is None:
        return f"{args}\n{venv}"
    return f"""{args}
{venv} && \\
    {VENV}/bin/pip install --no-cache-dir --disable-pip-version-check boto3=={boto3_version}"""


def _requirements_block(spec: ImageSpec) -> str:
    if not requirements_txt(spec.requirements):
        return ""
    flags = " --no-deps" if spec.locked else ""
    flags += " --require-hashes" if spec.require_hashes else ""
    return f"""COPY requirements.txt {KNOT_ROOT}/requirements.txt
RUN {VENV}/bin/pip install --no-cache-dir --disable-pip-version-check{flags} \\
    -r {KNOT_ROOT}/requirements.txt"""


def _final_block(spec: ImageSpec) -> str:
    # In the rule's own container its tools and python come first on PATH, and knot's
    # bundled python last (a container without one still has `python`); otherwise the
    # venv comes first, so shell() commands calling `python` see the requirements.
    # ${PATH:-...}: an imported image may set no PATH, and docker's default then applies.
    # A conda environment goes before both when the runtime activates it (runtime/conda.py).
    path = f" PATH={VENV}/bin:$PATH"
    if spec.from_container:
        path = f" PATH=${{PATH:-{DEFAULT_PATH}}}:{VENV}/bin" if spec.interpreter_image else ""
    path += f" {CONDA_PREFIX_ENV}={spec.conda.prefix}" if spec.conda else ""
    return f"""ENV PYTHONPATH={LIB} PYTHONUNBUFFERED=1{path}
WORKDIR /work
USER knot
ENTRYPOINT []
CMD {json.dumps(list(RUNTIME_COMMAND))}"""


def pip_build_args(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host's pip index URLs as build args. Only http(s) URLs without user:password
    pass: file:// paths do not exist in the build, and classic-builder build args are
    recorded in the image history, so credentials there would be pushed with the image."""
    environ = os.environ if environ is None else environ
    args = {}
    for name in PIP_INDEX_VARS:
        urls = [url for url in environ.get(name, "").split() if _shareable_url(name, url)]
        if urls:
            args[name] = " ".join(urls)
    return args


def _shareable_url(name: str, url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.username or parts.password:
        log.warning(
            "%s holds credentials; knot does not pass it to image builds, because build "
            "arguments are stored in the image. Builds use pip's default index instead.",
            name,
        )
        return False
    return True


def build_context(spec: ImageSpec, boto3_version: str | None = None) -> bytes:
    """The build context as an uncompressed tar: Dockerfile, requirements.txt,
    runtime/ (the runtime package) and rule/ (the rule files, relative to /opt/knot)."""
    members = {"Dockerfile": render_dockerfile(spec, boto3_version).encode()}
    reqs = requirements_txt(spec.requirements)
    if reqs:
        members["requirements.txt"] = reqs
    for name, data in runtime_files().items():
        members[f"runtime/{name}"] = data
    for path, data in spec.files:
        members[f"rule/{posixpath.relpath(path, KNOT_ROOT)}"] = data
    for path, data in spec.workdir_files:
        members[f"workdir/{path}"] = data
    if spec.conda and spec.conda.pip:
        members[f"{CONDA_CONTEXT}.pip.txt"] = condaenv.pip_requirements(spec.conda)
    return _tar(members, spec.conda)


def _tar(members: dict[str, bytes], layer: CondaLayer | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        # runtime/ always exists so `COPY runtime/` works before the runtime package does.
        for directory in sorted(_directories(members) | {"runtime"}):
            tar.addfile(_info(directory, tarfile.DIRTYPE, 0o755, 0))
        for name, data in sorted(members.items()):
            if name.endswith("/"):  # an empty folder, added with the directories above
                continue
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
        if layer:  # installed on the host, once per environment (image/conda.py)
            condaenv.add_tree(tar, layer, CONDA_CONTEXT)
    return buffer.getvalue()


def _directories(members: Iterable[str]) -> set[str]:
    found = set()
    for name in members:
        parent = posixpath.dirname(name)
        while parent:
            found.add(parent)
            parent = posixpath.dirname(parent)
    return found


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    # Fixed owner and mtime: the context, and so docker's COPY cache, depend on content only.
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, 0
    return info


def image_tag(spec: ImageSpec, boto3_version: str | None = None) -> str:
    """Content hash of everything that goes into the image. The rule name is left out,
    so rules with identical content share one image."""
    digest = hashlib.sha256()
    parts: list[tuple[str, str | bytes]] = [
        ("template", TEMPLATE_VERSION),
        ("knot", __version__),
        ("base", spec.base_image),
        ("platform", spec.platform),
        ("dockerfile", render_dockerfile(spec, boto3_version)),
        ("requirements", requirements_txt(spec.requirements)),
    ]
    parts += [(f"runtime:{name}", data) for name, data in runtime_files().items()]
    parts += [(f"rule:{path}", data) for path, data in spec.files]
    parts += [(f"workdir:{path}", data) for path, data in spec.workdir_files]
    for label, value in parts:
        data = value.encode() if isinstance(value, str) else value
        # Length-prefixed, so no two different inputs concatenate to the same bytes.
        digest.update(f"{label}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()[:24]
