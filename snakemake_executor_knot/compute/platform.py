"""The CPU architecture a workflow's images are built for, from its instance types (pure).

Batch launches whichever allowed instance type fits, and every instance of a run pulls the
same rule images, so the instance types decide one platform: linux/arm64 when all are
Graviton, linux/amd64 otherwise. The lock records it; image builds and job definitions use it.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

# Batch's instance-type keywords that are not EC2 families.
_KEYWORD_ARCH = {"optimal": "amd64", "default_x86_64": "amd64", "default_arm64": "arm64"}
# Graviton: a1, or a family whose generation digit is followed by "g" (m6g, c7gn, x2gd, im4gn).
_GRAVITON = re.compile(r"a1|[a-z]+[0-9]+g[a-z]*")


def platform_for(instance_types: tuple[str, ...]) -> str:
    """The image platform for a compute environment of ``instance_types``: linux/arm64
    when all are Graviton, linux/amd64 otherwise. One image serves every instance, so a
    mix of architectures is a ConfigError."""
    arches = {kind: _architecture(kind) for kind in instance_types}
    arm = sorted(kind for kind, arch in arches.items() if arch == "arm64")
    x86 = sorted(kind for kind, arch in arches.items() if arch == "amd64")
    if arm and x86:
        raise ConfigError(
            f"The instance types mix arm64 ({', '.join(arm)}) and x86_64 ({', '.join(x86)}). "
            "Each rule's image is built for one architecture: list only Graviton types or "
            "only x86 types in --knot-instance-types and --knot-compute-classes."
        )
    return "linux/arm64" if arm else "linux/amd64"


def _architecture(instance_type: str) -> str:
    kind = instance_type.strip().lower()
    if kind in _KEYWORD_ARCH:
        return _KEYWORD_ARCH[kind]
    family = kind.split(".", 1)[0]
    return "arm64" if _GRAVITON.fullmatch(family) else "amd64"


__all__ = ["platform_for"]
