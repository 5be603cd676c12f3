"""The largest instance a compute environment may launch, from its instance types (pure).

A job that asks for more vCPUs or memory than any allowed instance has stays RUNNABLE
forever: AWS Batch neither fails it nor says why. knot refuses such a job before submission.
The table is small and approximate on purpose: it knows the common families' largest sizes,
and a type or family it does not know is not checked (no false refusals).
"""

from __future__ import annotations

from typing import NamedTuple


class Size(NamedTuple):
    vcpus: int
    memory_gib: float


# Largest size of each family (vCPUs, GiB), from the EC2 instance type pages.
LARGEST = {
    "m5": Size(96, 384), "m5a": Size(96, 384), "m5d": Size(96, 384), "m6i": Size(128, 512),
    "m6a": Size(192, 768), "m6g": Size(64, 256), "m7i": Size(192, 768), "m7g": Size(64, 256),
    "c5": Size(96, 192), "c5a": Size(96, 192), "c5d": Size(96, 192), "c6i": Size(128, 256),
    "c6a": Size(192, 384), "c6g": Size(64, 128), "c7i": Size(192, 384), "c7g": Size(64, 128),
    "r5": Size(96, 768), "r5a": Size(96, 768), "r5d": Size(96, 768), "r6i": Size(128, 1024),
    "r6a": Size(192, 1536), "r6g": Size(64, 512), "r7i": Size(192, 1536), "r7g": Size(64, 512),
    "t3": Size(8, 32), "t3a": Size(8, 32), "x1": Size(128, 1952), "x1e": Size(128, 3904),
    "g4dn": Size(64, 256), "g5": Size(192, 768), "g6": Size(192, 768), "p3": Size(64, 488),
    "p4d": Size(96, 1152), "p5": Size(192, 2048),
}  # fmt: skip
# "optimal" lets Batch pick from the C, M and R families, up to 96 vCPUs and 768 GiB.
OPTIMAL = Size(96, 768)
# GiB per vCPU by family class, for a named size such as m5.2xlarge.
_GIB_PER_VCPU = {"c": 2, "m": 4, "r": 8, "t": 4, "x": 16, "g": 4, "p": 7.6}


def type_size(name: str) -> Size | None:
    """The size of one allowed entry: ``optimal``, a family (``m5``) or a type
    (``m5.2xlarge``); None when the table does not know it."""
    name = name.strip().lower()
    if name == "optimal":
        return OPTIMAL
    if name in LARGEST:
        return LARGEST[name]
    family, _, size = name.partition(".")
    count = size.removesuffix("xlarge")
    if family not in LARGEST:
        return None
    if size == "metal":
        return LARGEST[family]
    if size == "large":
        vcpus = 2
    elif size.endswith("xlarge") and (count == "" or count.isdigit()):
        vcpus = 4 * int(count or 1)
    else:
        return None
    return Size(vcpus, vcpus * _GIB_PER_VCPU.get(family[0], 4))


def largest(instance_types: tuple[str, ...]) -> Size | None:
    """The most vCPUs and the most memory one allowed instance may have; None when any
    entry is unknown (then knot cannot tell, and does not refuse)."""
    sizes = [type_size(name) for name in instance_types]
    known = [size for size in sizes if size is not None]
    if not sizes or len(known) < len(sizes):
        return None
    return Size(max(s.vcpus for s in known), max(s.memory_gib for s in known))
