"""What the patches need to know about the running emulator (``Fidelity``): set by
``install.apply`` through ``configure``, read by each patch through ``fidelity()`` when
moto calls it. A module of its own so that no patch imports ``install``, which imports
them all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fidelity:
    """What the patches need to know about the running emulator."""

    endpoint: str  # http://127.0.0.1:<port>: AWS_ENDPOINT_URL inside jobs
    registry: str  # 127.0.0.1:<registry port>: ECR's registry host
    label: str  # value of the knot.emulator label on containers this process starts
    state_dir: Path | None = None  # where `knot emulator faults` leaves its switches


_fidelity: Fidelity | None = None


def fidelity() -> Fidelity:
    if _fidelity is None:
        raise RuntimeError("emulator patches used before apply()")
    return _fidelity


def configure(config: Fidelity) -> bool:
    """Make ``config`` the running emulator's; True the first time, when moto is not yet
    patched."""
    global _fidelity
    first = _fidelity is None
    _fidelity = config
    return first
