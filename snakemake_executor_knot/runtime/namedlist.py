"""Snakemake's named lists (``input``, ``output``, ``params``, ...) without Snakemake."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex, TypeVar, overload

# Names that may shadow a list method, as Snakemake allows for these two only.
_OVERRIDABLE = frozenset({"index", "sort"})


class Namedlist(list):
    """A list whose items (or slices of items) can also be reached by name.

    ``names[name] = (start, end)``: ``end`` is None for a single item, else the exclusive
    end of a slice, which is then itself a Namedlist. Like Snakemake, ``str()`` joins the
    items with spaces, and being a ``list`` makes ``str.format`` join them too.
    """

    def __init__(
        self, items: Iterable[Any] = (), names: dict[str, tuple[int, int | None]] | None = None
    ) -> None:
        super().__init__(items)
        self._names: dict[str, tuple[int, int | None]] = {}
        for name, (start, end) in (names or {}).items():
            self._set_name(name, start, end)

    def _set_name(self, name: str, start: int, end: int | None) -> None:
        if name not in _OVERRIDABLE and hasattr(type(self), name):
            raise ValueError(f"{name!r} cannot name an item: it is reserved for internal use")
        self._names[name] = (start, end)
        value = self[start] if end is None else Namedlist(self[start:end])
        setattr(self, name, value)

    def __getitem__(self, key: SupportsIndex | slice | str) -> Any:
        if isinstance(key, str):
            if key not in self._names:
                raise KeyError(key)
            return getattr(self, key)
        return super().__getitem__(key)

    def keys(self):
        return self._names.keys()

    def items(self) -> Iterator[tuple[str, Any]]:
        for name in self._names:
            yield name, getattr(self, name)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._names else default

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __str__(self) -> str:
        return " ".join(map(str, self))


class Wildcards(Namedlist):
    """Wildcards format as ``name=value,...`` when used whole in a shell command."""


_List = TypeVar("_List", bound=Namedlist)


@overload
def from_section(section: dict | None) -> Namedlist: ...
@overload
def from_section(section: dict | None, cls: type[_List]) -> _List: ...
def from_section(section: dict | None, cls: type[Namedlist] = Namedlist) -> Namedlist:
    """Build a named list from a spec section ``{"items": [...], "names": {...}}``."""
    section = section or {}
    names = {name: (span[0], span[1]) for name, span in (section.get("names") or {}).items()}
    return cls(section.get("items") or [], names)


def paths_of(section: dict | None) -> Namedlist:
    """The file section of a spec (input/output/log) as a named list of path strings."""
    section = section or {}
    items = [str(item["path"]) for item in section.get("items") or []]
    return from_section({"items": items, "names": section.get("names")})
