"""A rule's own ``container:`` image: its reference, and the Python knot brings into it.

Snakemake names containers as URIs (``docker://bash``, ``docker://quay.io/x/y:1``);
``docker build`` wants a plain reference in ``FROM``, so the scheme goes. Other schemes
(Singularity Hub, a Sylabs library, a local ``.sif`` file) name images docker cannot
build FROM and are refused before anything is built.

knot's runtime needs Python 3 and boto3, and the rule's Python code needs the
requirements pinned for the base image's Python. A container image may have no Python, an
old one, or a musl one (Alpine). So knot does not use the container's Python: a first
build stage, on knot's base image, makes the venv with the requirements, and copies that
Python, its standard library, the shared libraries it links and the dynamic loader into
``/opt/knot/python``. The venv's ``python`` is a two-line ``/bin/sh`` launcher that starts
the interpreter through that loader with ``--library-path``, so neither the image's C
library nor its loader is used; programs the rule runs (the container's own tools) are
not affected, as the library path belongs to the interpreter's process only. The image
needs ``/bin/sh`` (for the build's ``RUN`` steps and the launcher); a distroless image
without a shell is not supported.
"""

from __future__ import annotations

import re

from ..errors import RuleError
from ..runtime.contract import KNOT_ROOT, VENV

# Where the bundled interpreter lives in a container rule's image.
BUNDLE = f"{KNOT_ROOT}/python"
STAGE = "knot-python"
# docker's reference grammar, loosely: [host[:port]/]path[:tag][@digest], lower case path.
_REFERENCE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)
_OTHER_SCHEMES = ("shub://", "library://", "oras://", "http://", "https://", "file://")


def container_reference(uri: str, rule: str) -> str:
    """The docker reference of a ``container:`` URI; a RuleError, naming the rule and the
    way out, for one docker cannot build FROM."""
    text = uri.strip()
    reference = text.removeprefix("docker://")
    problem = _problem(text, reference)
    if problem:
        raise RuleError(
            f"Rule '{rule}' names the container '{uri}', which knot cannot use: {problem}. "
            "knot builds the rule's image FROM a Docker image: name one as "
            "'docker://<repository>[:<tag>]' (for example 'docker://ubuntu:24.04'), or "
            "push the image to a registry the build can pull from."
        )
    return reference


def _problem(text: str, reference: str) -> str | None:
    if text.lower().startswith(_OTHER_SCHEMES):
        return "only docker:// images can be built on (not Singularity or web URIs)"
    if text.lower().endswith(".sif"):
        return "a Singularity image file is not a Docker image"
    if "{" in reference or "}" in reference:
        return "its wildcards were not filled in"
    if not _REFERENCE.match(reference):
        return "this is not a valid Docker image reference"
    return None


def interpreter_stage(base_image: str, venv_steps: str) -> str:
    """The first build stage: on knot's base, the venv (``venv_steps``: its creation and
    pip installs), then the interpreter bundled under BUNDLE and the venv's launchers."""
    return f"""FROM {base_image} AS {STAGE}
USER root
{venv_steps}
RUN {_BUNDLE_SCRIPT}"""


def copy_interpreter() -> str:
    return f"COPY --from={STAGE} {KNOT_ROOT}/ {KNOT_ROOT}/"


# Runs in the stage: python3 there is the base's own (Debian's). The loader is found as the
# one absolute path ldd prints without '=>'; every library ldd names for the interpreter
# and its extension modules is copied (links followed), plus libgcc_s and libstdc++, which
# manylinux wheels expect the system to have. The venv's python, python3 and python3.X
# become the launcher; --argv0 makes sys.executable the launcher, so code that starts
# sys.executable (multiprocessing, pip) goes through it too.
_BUNDLE_SCRIPT = f"""set -e; P={BUNDLE}; V={VENV}; \\
    exe="$(readlink -f "$(command -v python3)")"; \\
    stdlib="$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"; \\
    short="$(basename "$stdlib")"; \\
    mkdir -p "$P/bin" "$P/lib"; cp "$exe" "$P/bin/python3"; cp -a "$stdlib" "$P/lib/"; \\
    rm -rf "$P/lib/$short/test" "$P/lib/$short/site-packages"; \\
    for f in "$exe" $(find "$stdlib/lib-dynload" -name '*.so'); do ldd "$f"; done \\
      | awk '$2 == "=>" && $3 ~ /^\\// {{print $3}} $1 ~ /^\\// {{print "LOADER " $1}}' \\
      | sort -u > /tmp/knot-libs; \\
    loader="$(awk '$1 == "LOADER" {{print $2; exit}}' /tmp/knot-libs)"; \\
    test -n "$loader"; cp -L "$loader" "$P/lib/ld.so"; \\
    for lib in $(awk '$1 != "LOADER"' /tmp/knot-libs); do cp -L "$lib" "$P/lib/"; done; \\
    for extra in libgcc_s.so.1 libstdc++.so.6; do \\
      found="$(ldconfig -p | awk -v n="$extra" '$1 == n {{print $NF; exit}}')"; \\
      if [ -n "$found" ]; then cp -L "$found" "$P/lib/"; fi; \\
    done; \\
    rm -f /tmp/knot-libs "$V"/bin/python "$V"/bin/python3 "$V"/bin/python3.*; \\
    sed -i "s|^home = .*|home = $P/bin|" "$V/pyvenv.cfg"; \\
    printf '#!/bin/sh\\nexec %s/lib/ld.so --library-path %s/lib --argv0 %s/bin/python3 \
%s/bin/python3 "$@"\\n' "$P" "$P" "$V" "$P" > "$V/bin/python3"; \\
    chmod 755 "$V/bin/python3"; ln -s python3 "$V/bin/python"; \\
    ln -s python3 "$V/bin/$short" """


# ---- the container of a job


def per_job_container(rule) -> bool:
    """Whether the rule's container is computed per job: from a function, or with wildcards."""
    image = getattr(rule, "container_img", None)
    return callable(image) or (isinstance(image, str) and "{" in image)


def job_container(job) -> str | None:
    """The docker reference of the job's container (its wildcards filled in, a function
    called), or None when the rule has none (``container: False`` included)."""
    rule = job.rule
    url = job.container_img_url if per_job_container(rule) else getattr(rule, "container_img", None)
    if not url:
        return None
    if not isinstance(url, str):
        raise RuleError(
            f"Rule '{rule.name}': its container function returned {url!r}, not a "
            "container URI. Return a string such as 'docker://ubuntu:24.04'."
        )
    return container_reference(url, rule.name)


def check_group_containers(group) -> None:
    """A group runs in one image: the members of a rule with a per-job container must all
    name the same one."""
    for rule in {m.rule for m in group.jobs if per_job_container(m.rule)}:
        found = sorted({str(job_container(m)) for m in group.jobs if m.rule is rule})
        if len(found) > 1:
            raise RuleError(
                f"Rule '{rule.name}': jobs of one group ({group.groupid}) name different "
                f"containers ({', '.join(found)}), but a group runs in one image. Take the "
                "rule out of the group, or give its jobs one container."
            )
