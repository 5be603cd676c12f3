"""JSON documents another party wrote (a job's usage document, a directory's manifest):
read with a size cap, and parsed so that nesting too deep for Python's parser is a refusal
like any other malformed document, never a ``RecursionError`` that stops the reader.
Standard library only: the host and the jobs both read them.
"""

from __future__ import annotations

import json
from typing import Protocol


class BadDocument(ValueError):
    """A document that is too large, too deeply nested or not JSON; says which and where."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def read_capped(body: Readable, cap: int, where: str) -> bytes:
    """At most ``cap`` bytes of a stream (an S3 object's body); a longer one is refused
    after reading one byte more than the cap, never the whole of it."""
    data = body.read(cap + 1)
    if len(data) > cap:
        raise BadDocument(f"{where} is larger than {cap:,} bytes, the most knot reads")
    return data


def parse(data: bytes | str, where: str) -> object:
    """The JSON value of ``data``; anything that is not a readable JSON document is a
    ``BadDocument`` naming ``where``."""
    try:
        return json.loads(data)
    except RecursionError as exc:  # the C parser's nesting limit: thousands of '[' deep
        raise BadDocument(f"{where} is nested too deeply to be read as JSON") from exc
    except ValueError as exc:  # bad JSON or UTF-8 (JSONDecodeError, UnicodeDecodeError)
        raise BadDocument(f"{where} is not valid JSON: {exc}") from exc
