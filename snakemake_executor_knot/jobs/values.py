"""Encoding a job's params, wildcards, resources and config for the job spec (host side).

JSON stays the format wherever it is exact: str, bool, None, int, float (nan and inf as
Python's json writes them), lists of those and dicts with str keys, recursively, all of
exact built-in types. Any other value (tuple, set, Path, datetime, Decimal, numpy scalars and
arrays, dataclasses, dicts with other keys, IntEnum, str subclasses ...) travels as a base64
pickle in a marker object, so the job gets it back equal and of the same type. Only the
smallest non-JSON part is pickled: a list of strings with one Path in it pickles the Path.
The container decodes with ``snakemake_executor_knot.runtime.values.decode_value``, which
also owns the marker keys.

Pickle bytes are not a canonical form of a value. A set or frozenset pickles in iteration
order, which for str and bytes items depends on the per-process hash seed (PYTHONHASHSEED),
so an equal set of strings can encode differently in two runs; and objects shared within a
value pickle as back-references. Whoever hashes a spec (to name or cache something) gets a
new hash for an equal value in those cases. Sorting is not done: mixed-type sets do not sort,
and CPython's Pickler skips ``reducer_override`` for exact sets. The spec's integrity check
is unaffected, since it hashes the bytes that were actually written.
"""

from __future__ import annotations

import base64
import io
import pickle
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import RuleError
from ..runtime.values import ESCAPE_KEY, MARKER_KEYS, PICKLE_KEY, marker_of

# Protocol 5 is fixed rather than pickle.DEFAULT_PROTOCOL (4 up to Python 3.13, 5 from 3.14)
# so that the bytes, and any hash of a spec, do not change with the host's Python. Every
# Python from 3.8 on reads it, which covers every image knot builds (requires-python >= 3.11).
PICKLE_PROTOCOL = 5

_JSON_SCALARS = frozenset({str, bool, int, float, type(None)})


def encode_value(value: Any, *, rule: str, what: str) -> Any:
    """A JSON-compatible form of ``value`` that ``decode_value`` turns back into an equal
    value of the same type. ``what`` names the value in errors, e.g. "param 'n'".

    Raises RuleError when a part that is not exact JSON cannot be pickled.
    """
    value = _without_snakemake_types(value)
    kind = type(value)
    # Exact types only: json would write an IntEnum or a str subclass, but read back the base.
    if kind in _JSON_SCALARS:
        return value
    if kind is list:
        return [encode_value(item, rule=rule, what=what) for item in value]
    if kind is dict and all(type(key) is str for key in value):
        items = {key: encode_value(item, rule=rule, what=what) for key, item in value.items()}
        return {ESCAPE_KEY: items} if items.keys() & MARKER_KEYS else items
    return {PICKLE_KEY: _pickled(value, rule, what)}


def _without_snakemake_types(value: Any) -> Any:
    """Snakemake's own str and list subclasses (``_IOFile``, ``AnnotatedString``,
    ``TBDString``, its named lists) as plain str and list, as plain JSON carried them before.

    The image has no Snakemake to unpickle them, and an ``_IOFile`` holds its rule, which
    drags the workflow along. A param like ``lambda wildcards, input: input[0]`` gives one.
    """
    if type(value).__module__.partition(".")[0] != "snakemake":
        return value
    if isinstance(value, str):
        return str.__str__(value)  # an exact str copy; str(value) would run the subclass's __str__
    if isinstance(value, list):
        return list(value)
    return value


def _pickled(value: Any, rule: str, what: str) -> str:
    try:
        data = pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise RuleError(
            f"Rule '{rule}': {what} cannot be sent to the job: it is a "
            f"{type(value).__name__}, which is neither plain JSON nor picklable ({exc}). "
            "Compute it inside the run block, or pass a plain value (str, number, list, "
            "dict) it can be built from."
        ) from exc
    if "snakemake" in _loaded_modules(data):
        # Classes defined in a Snakefile live in snakemake.workflow, and the image has no
        # Snakemake: the job could not load the value.
        raise RuleError(
            f"Rule '{rule}': {what} is (or holds) a {type(value).__name__} defined in the "
            "Snakefile, which the job cannot load: its image has no Snakemake. Build the "
            "object inside the run block from plain values passed as params."
        )
    return base64.b64encode(data).decode("ascii")


def required_modules(encoded: Any) -> set[str]:
    """Top-level modules, outside the standard library, that the pickled parts of
    ``encoded`` (an ``encode_value`` result) need to load, e.g. {"numpy"} for np.int64.

    The image must provide them even if the rule's own code never imports them.
    """
    found: set[str] = set()
    for text in _pickles(encoded):
        found |= _loaded_modules(base64.b64decode(text))
    return {name for name in found if name not in sys.stdlib_module_names}


def _pickles(encoded: Any) -> Iterator[str]:
    """The base64 pickles inside an encoded value."""
    if type(encoded) is list:
        for item in encoded:
            yield from _pickles(item)
    elif type(encoded) is dict:
        marker = marker_of(encoded)
        if marker == PICKLE_KEY:
            yield encoded[PICKLE_KEY]
            return
        items = encoded[ESCAPE_KEY] if marker == ESCAPE_KEY else encoded
        for item in items.values():
            yield from _pickles(item)


class _ModuleRecorder(pickle.Unpickler):
    """Loads a pickle and records the top-level module of every global it looks up."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.modules: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.modules.add(module.partition(".")[0])
        return super().find_class(module, name)


def _loaded_modules(data: bytes) -> set[str]:
    # Loading rather than scanning opcodes with pickletools: protocols 4 and 5 name globals
    # with STACK_GLOBAL, whose module string was pushed earlier and is often a memo
    # back-reference, so a scan would have to replay the stack and memo. A load sees exactly
    # the globals used, and is safe because this process wrote the bytes and has every module.
    # The cost is building the value once more.
    recorder = _ModuleRecorder(data)
    recorder.load()
    return recorder.modules
