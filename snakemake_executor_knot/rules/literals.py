"""Python source that rebuilds a plain constant (None, numbers, strings, paths, containers)."""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path

_SCALARS = (type(None), bool, int, float, complex, str, bytes, range)


def literal(value: object, depth: int = 0) -> str | None:
    """Python source that rebuilds a plain constant, or None if it is not one."""
    kind = type(value)
    if depth > 100:
        return None
    if type(value) is float and not math.isfinite(value):
        return f"float({str(value)!r})"
    if kind in _SCALARS:
        return _repr(value)
    if isinstance(value, str):  # Snakemake's AnnotatedString (temp(), ...) is a str
        return repr(str(value))
    if isinstance(value, Path) and kind in (type(Path()), Path):
        return f"Path({str(value)!r})"
    # These exact types only: a subclass (a namedtuple, ...) is not rebuilt by this source.
    if isinstance(value, list | tuple | set | frozenset) and kind in (list, tuple, set, frozenset):
        return _sequence_literal(value, depth)
    if type(value) is dict:
        return _dict_literal(value, depth)
    return None


def _repr(value: object) -> str | None:
    try:
        return repr(value)
    except ValueError:  # an int too long for sys.get_int_max_str_digits()
        return None


def _sequence_literal(value: Collection[object], depth: int) -> str | None:
    items = [text for item in value if (text := literal(item, depth + 1)) is not None]
    if len(items) < len(value):
        return None
    joined = ", ".join(items)
    if isinstance(value, list):
        return f"[{joined}]"
    if isinstance(value, tuple):
        return f"({joined},)" if len(items) == 1 else f"({joined})"
    inner = f"{{{joined}}}" if items else ""
    return f"set({inner})" if isinstance(value, set) else f"frozenset({inner})"


def _dict_literal(value: dict, depth: int) -> str | None:
    pairs = []
    for key, item in value.items():
        key_text, item_text = literal(key, depth + 1), literal(item, depth + 1)
        if key_text is None or item_text is None:
            return None
        pairs.append(f"{key_text}: {item_text}")
    return "{" + ", ".join(pairs) + "}"
