"""The property and classmethod objects that moto's classes store, for the patches that
wrap them. Looking such an attribute up on the class gives a plain function (mypy's view
too), which has no ``fget`` or ``__func__``; these read the stored object itself."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def stored(cls: type, name: str, kind: type[T]) -> T:
    """What ``cls`` stores under ``name`` (here or in a base class), checked to be a
    ``kind``: a moto release that changes it fails here rather than in a request."""
    found = inspect.getattr_static(cls, name)
    if not isinstance(found, kind):
        raise TypeError(f"{cls.__name__}.{name} is not a {kind.__name__}")
    return found


def getter(prop: property) -> Callable[[Any], Any]:
    """The function behind a property's reads."""
    if prop.fget is None:
        raise TypeError("property has no getter")
    return prop.fget
