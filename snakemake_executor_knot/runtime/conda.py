"""Running a shell or script rule inside the rule's conda environment, as Snakemake
activates it: the environment's bin first on PATH, CONDA_PREFIX set, and the packages'
activation scripts (etc/conda/activate.d/*.sh) sourced before the command."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, MutableMapping

from .contract import CONDA_PREFIX_ENV, CONDA_ROOT


def conda_prefix(env: Mapping[str, str]) -> str | None:
    """The image's environment, if it has one; only a folder under CONDA_ROOT counts."""
    prefix = env.get(CONDA_PREFIX_ENV, "")
    if not prefix.startswith(f"{CONDA_ROOT}/") or not os.path.isdir(prefix):
        return None
    return os.path.normpath(prefix)


def activate(env: MutableMapping[str, str], prefix: str) -> None:
    """Set what conda's activation sets in ``env`` (os.environ, for the command's shell)."""
    env["PATH"] = os.pathsep.join([os.path.join(prefix, "bin"), env.get("PATH", "")]).rstrip(
        os.pathsep
    )
    env["CONDA_PREFIX"] = prefix
    env["CONDA_DEFAULT_ENV"] = prefix
    env["CONDA_SHLVL"] = "1"


def activation_scripts(prefix: str) -> str:
    """Shell text sourcing the environment's activate.d scripts, in name order as conda
    runs them; "" when it has none."""
    folder = os.path.join(prefix, "etc", "conda", "activate.d")
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".sh"))
    except FileNotFoundError:
        return ""
    return "".join(f". {shlex.quote(os.path.join(folder, name))}; " for name in names)
