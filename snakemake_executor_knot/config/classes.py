"""Compute classes: named sets of instances a rule may ask for (pure).

``--knot-compute-classes`` lists them, separated by ``;``, each as
``name=types[:VOLUME][:spot|:ondemand][:maxvcpus=N][:cache=SIZE]``: ``types`` are
comma-separated instance types or families, ``VOLUME`` the root volume (``500GB``; GiB, as
EBS counts), ``cache`` the cap of the instance's input cache on that volume (``200GB``;
none when left out, see runtime/cache.py), and an option left out takes the stack-wide
flag's value. The class ``default`` always
exists: it is built from the stack-wide flags, and defining it here only overrides them.

A class holds either GPU instance types or none: Batch places a job on any type of its
compute environment, so a class mixing both would put CPU jobs on GPU instances.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..errors import ConfigError

DEFAULT_CLASS = "default"
GPU_FAMILY_PREFIXES = ("p2", "p3", "p4", "p5", "g3", "g4", "g5", "g6", "g7", "gr6", "dl1")
# AWS's own limits: a gp3 volume holds 8 GiB (knot's floor) to 16 TiB.
MIN_ROOT_VOLUME_GB = 8
MAX_ROOT_VOLUME_GB = 16384
# Lower-case letters and digits only: the name becomes part of CloudFormation logical ids
# (alphanumeric), and two spellings must never map to one id.
_NAME = re.compile(r"[a-z][a-z0-9]{0,23}")
_TYPE = re.compile(r"[a-z0-9][a-z0-9.-]{0,39}")
_VOLUME = re.compile(r"(\d+)\s*(gb|gib|g)", re.IGNORECASE)
_MAX_VCPUS = re.compile(r"maxvcpus=(\d+)", re.IGNORECASE)
_CACHE = re.compile(r"cache=(\d+)\s*(gb|gib|g)", re.IGNORECASE)
# What the input cache leaves of the root volume: the images, the ECS agent and the jobs'
# working directories live there too.
MIN_JOB_SPACE_GB = MIN_ROOT_VOLUME_GB
# Each class adds about 3 KB to the template, and CreateStack takes at most 51,200 bytes.
MAX_CLASSES = 10
FLAG = "--knot-compute-classes"
EXAMPLE = "default=optimal; gpu=g5,g4dn:ondemand; bigdisk=m6i:500GB:maxvcpus=64"
GRAMMAR = "name=types[:VOLUME][:spot|:ondemand][:maxvcpus=N][:cache=SIZE], separated by ';'"


def is_gpu_type(name: str) -> bool:
    return name.strip().lower().startswith(GPU_FAMILY_PREFIXES)


@dataclass(frozen=True)
class ComputeClass:
    """One class: its own launch template, compute environments and job queue."""

    name: str
    instance_types: tuple[str, ...]
    spot: bool
    root_volume_gb: int
    max_vcpus: int
    min_vcpus: int = 0
    # The cap of the instance's input cache; 0: none. A run's setting, not the stack's: it
    # reaches jobs at SubmitJob (every launch template prepares the cache's folder), so
    # it is neither recorded in the stack nor compared with the deployed class.
    cache_gb: int = dataclasses.field(default=0, compare=False)

    @property
    def cache_bytes(self) -> int:
        return self.cache_gb * 1024**3

    @property
    def has_gpus(self) -> bool:
        return any(is_gpu_type(t) for t in self.instance_types)

    def describe(self) -> str:
        """The class in the grammar's own form, for messages and ``knot infra status``."""
        market = "spot" if self.spot else "ondemand"
        types = ",".join(self.instance_types)
        cache = f":cache={self.cache_gb}GB" if self.cache_gb else ""
        volume = f"{self.root_volume_gb}GB"
        return f"{self.name}={types}:{volume}:{market}:maxvcpus={self.max_vcpus}{cache}"

    def as_record(self) -> dict:
        """The class as recorded in the stack's ``Settings`` output (JSON)."""
        return {
            "instance_types": list(self.instance_types),
            "spot": self.spot,
            "root_volume_gb": self.root_volume_gb,
            "max_vcpus": self.max_vcpus,
        }


def _fail(part: str, why: str) -> ConfigError:
    return ConfigError(f"{FLAG}: '{part}' {why}. Write classes as {GRAMMAR}, e.g. \"{EXAMPLE}\".")


def parse_classes(text: str | None, base: ComputeClass) -> tuple[ComputeClass, ...]:
    """The classes of ``text``, in their order; ``base`` (the stack-wide flags) gives the
    values an entry leaves out. Raises ConfigError naming the part that failed."""
    classes: dict[str, ComputeClass] = {}
    for entry in (part.strip() for part in (text or "").split(";")):
        if not entry:
            continue
        found = _parse_entry(entry, base)
        if found.name in classes:
            raise _fail(entry, f"defines the class '{found.name}' a second time")
        classes[found.name] = found
    if len(classes) > MAX_CLASSES:
        raise _fail(
            f"{len(classes)} classes",
            f"is more than {MAX_CLASSES}, the most one CloudFormation template has room for",
        )
    return tuple(classes.values())


def _parse_entry(entry: str, base: ComputeClass) -> ComputeClass:
    name, sep, rest = (piece.strip() for piece in entry.partition("="))
    if not sep:
        raise _fail(entry, "has no '=' between the class name and its instance types")
    if not _NAME.fullmatch(name):
        raise _fail(name, "is not a class name (a lower-case letter, then letters and digits)")
    types_text, *options = (piece.strip() for piece in rest.split(":"))
    types = tuple(t.strip().lower() for t in types_text.split(",") if t.strip())
    if not types:
        raise _fail(entry, "lists no instance types")
    for kind in types:
        if not _TYPE.fullmatch(kind):
            raise _fail(kind, "is not an instance type or family (such as m6i or g5.xlarge)")
    found = ComputeClass(name, types, base.spot, base.root_volume_gb, base.max_vcpus)
    for option in options:
        found = dataclasses.replace(found, **_option(option))
    _check_class(entry, found)
    return found


def _option(option: str) -> dict:
    lowered = option.lower().replace("-", "")
    if lowered in ("spot", "ondemand"):
        return {"spot": lowered == "spot"}
    volume = _VOLUME.fullmatch(option)
    if volume:
        return {"root_volume_gb": int(volume.group(1))}
    limit = _MAX_VCPUS.fullmatch(option)
    if limit:
        return {"max_vcpus": int(limit.group(1))}
    cache = _CACHE.fullmatch(option)
    if cache:
        return {"cache_gb": int(cache.group(1))}
    raise _fail(
        option, "is not a volume size (500GB), 'spot', 'ondemand', 'maxvcpus=N' or 'cache=SIZE'"
    )


def _check_class(entry: str, found: ComputeClass) -> None:
    if not MIN_ROOT_VOLUME_GB <= found.root_volume_gb <= MAX_ROOT_VOLUME_GB:
        raise _fail(
            entry,
            f"asks for a root volume outside {MIN_ROOT_VOLUME_GB} to {MAX_ROOT_VOLUME_GB} GB "
            "(gp3's range)",
        )
    if found.max_vcpus < 1:
        raise _fail(entry, "needs maxvcpus of at least 1")
    check_cache(found)
    check_gpu_split(found)


def check_cache(found: ComputeClass) -> None:
    """The input cache lives on the class's root volume and must leave the jobs room."""
    room = found.root_volume_gb - MIN_JOB_SPACE_GB
    if found.cache_gb > room:
        raise ConfigError(
            f"{FLAG}: class '{found.name}' asks for an input cache of {found.cache_gb} GB on "
            f"a root volume of {found.root_volume_gb} GB; the cache lives on that volume and "
            f"must leave {MIN_JOB_SPACE_GB} GB for images and jobs. Give the class a larger "
            f"volume (':{found.cache_gb + MIN_JOB_SPACE_GB}GB' or more) or a smaller cache "
            f"(':cache={max(room, 0)}GB' at most)."
        )


def check_gpu_split(found: ComputeClass) -> None:
    """A class is all GPU or no GPU, and ``default`` (where CPU rules go) has none."""
    gpu = [t for t in found.instance_types if is_gpu_type(t)]
    if gpu and len(gpu) < len(found.instance_types):
        raise ConfigError(
            f"{FLAG}: class '{found.name}' mixes GPU types ({','.join(gpu)}) with others; "
            "Batch would put CPU jobs on GPU instances. Give the GPU types a class of their "
            f'own, e.g. "{found.name}=optimal; gpu={",".join(gpu)}".'
        )
    if gpu and found.name == DEFAULT_CLASS:
        raise ConfigError(
            f"The default compute class has GPU instance types ({','.join(gpu)}), and every "
            "rule without knot_class or gpu runs there. Keep --knot-instance-types to CPU "
            f'types and give the GPU types a class: {FLAG} "gpu={",".join(gpu)}".'
        )


def class_from_record(name: object, record: object) -> ComputeClass:
    """A class read back from a deployed stack's ``Settings`` output, checked as hostile
    input the way a flag is; ConfigError when it does not hold up."""
    unreadable = ConfigError(
        f"knot's stack records a compute class it cannot read ({str(name)[:40]!r}). Run "
        "'knot infra up' with that class defined in --knot-compute-classes to rewrite it."
    )
    if not isinstance(name, str) or not isinstance(record, dict):
        raise unreadable
    types = record.get("instance_types")
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise unreadable
    market = "spot" if record.get("spot") is True else "ondemand"
    entry = f"{name}={','.join(types)}:{record.get('root_volume_gb')}GB:{market}"
    entry += f":maxvcpus={record.get('max_vcpus')}"
    try:
        (found,) = parse_classes(entry, ComputeClass(DEFAULT_CLASS, (), True, 30, 1))
    except (ConfigError, ValueError) as exc:
        raise unreadable from exc
    return found


def logical_prefix(name: str) -> str:
    """The prefix of a class's CloudFormation logical ids; '' for ``default``, whose ids
    predate classes and must stay, so existing stacks update in place."""
    return "" if name == DEFAULT_CLASS else f"Class{name.capitalize()}"
