"""Snakefile helpers on file patterns: ``expand``, ``glob_wildcards``, ``multiext``."""

from __future__ import annotations

import collections
import itertools
import os
import re
import string
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# A wildcard `{name}` or `{name,constraint}`; a constraint may hold one level of counted
# braces such as `{id,[a-z]{3}}`.
WILDCARD = re.compile(
    r"\{\s*(?P<name>\w+)\s*(?:,\s*(?P<constraint>(?:[^{}]+|\{\d+(?:,\d+)?\})*)\s*)?\}"
)
# The field names `str.format` would look up: `{name}`, `{name.attr}`, `{name[0]}`, `{name:fmt}`.
_FIELD_NAME = re.compile(r"\{([^}.\[!:]+)")


class WildcardError(KeyError):
    """``expand()`` was given no values for a wildcard of the pattern."""

    def __str__(self) -> str:
        return str(self.args[0])


class _KeepMissing(dict):
    """With ``allow_missing=True`` a wildcard without values stays as ``{name}``."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _as_values(value: Any) -> list:
    """A wildcard's values: a string or a scalar is one value, any other iterable many."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        return [value]
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple is one value
        return [value]
    return list(value)


def expand(
    patterns: str | Path | Iterable[str | Path],
    combinator: Callable[..., Iterable] = itertools.product,
    /,
    *,
    allow_missing: bool = False,
    **values: Any,
) -> list[str]:
    """Fill every pattern with every combination of the values, pattern by pattern.

    ``combinator`` (itertools.product by default, or ``zip``) combines the value lists of
    the wildcards a pattern uses; wildcards a pattern does not use are ignored for it.
    """
    if isinstance(patterns, str | Path):
        patterns = [patterns]
    mapping = _KeepMissing if allow_missing else dict
    formatter = string.Formatter()
    result = []
    for pattern in map(str, patterns):
        used = _FIELD_NAME.findall(pattern)
        choices = [[(k, v) for v in _as_values(values[k])] for k in values if k in used]
        for combination in combinator(*choices):
            try:
                result.append(formatter.vformat(pattern, (), mapping(combination)))
            except KeyError as exc:
                raise WildcardError(f"no values given for wildcard {exc} of {pattern!r}") from None
    return result


def multiext(prefix: str, *extensions: str, **named_extensions: str) -> list[str]:
    """``prefix`` joined with each extension (all positional or all named)."""
    if bool(extensions) == bool(named_extensions):
        raise ValueError("multiext takes either only positional or only named extensions")
    chosen = extensions or tuple(named_extensions.values())
    if any("/" in ext or "\\" in ext for ext in chosen):
        raise ValueError("multiext extensions may not contain path separators")
    return [prefix + ext for ext in chosen]


def regex_of(pattern: str) -> str:
    """A regex matching what ``pattern`` matches, a named group per wildcard (repeats
    must equal the first occurrence), anchored at the end."""
    parts, last, seen = [], 0, set()
    for match in WILDCARD.finditer(pattern):
        parts.append(re.escape(pattern[last : match.start()]))
        name = match.group("name")
        if name in seen:
            parts.append(f"(?P={name})")
        else:
            seen.add(name)
            parts.append(f"(?P<{name}>{match.group('constraint') or '.+'})")
        last = match.end()
    parts.append(re.escape(pattern[last:]) + "$")
    return "".join(parts)


def _walk(folder: str, followlinks: bool) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=followlinks):
        for name in itertools.chain(filenames, dirnames):
            yield os.path.normpath(os.path.join(dirpath, name))


def glob_wildcards(pattern: str, files: Iterable[str] | None = None, followlinks: bool = False):
    """The values of each wildcard over the files (and folders) matching ``pattern``.

    Returns a namedtuple with one list per wildcard, in order of first appearance. Without
    ``files``, walks the folder before the first wildcard.
    """
    pattern = os.path.normpath(pattern)
    first = WILDCARD.search(pattern)
    folder = os.path.dirname(pattern[: first.start()] if first else pattern) or "."
    names = list(dict.fromkeys(m.group("name") for m in WILDCARD.finditer(pattern)))
    found = collections.namedtuple("Wildcards", names)(*([] for _ in names))
    regex = re.compile(regex_of(pattern))
    for path in _walk(folder, followlinks) if files is None else files:
        match = regex.match(path)
        if match:
            for name, value in match.groupdict().items():
                getattr(found, name).append(value)
    return found
