"""Decoding the params, wildcards, resources and config of a job spec (container side).

The host writes these values as JSON where JSON is exact and as base64 pickle, wrapped in a
marker object, everywhere else (see ``snakemake_executor_knot.jobs.values``). The marker keys are
defined here, once: the host imports them from this module, the runtime never imports the host.

An encoded value is plain JSON in which a dict with exactly one key, that key being
``PICKLE_KEY`` or ``ESCAPE_KEY``, is a marker:

- ``{PICKLE_KEY: "<base64 pickle>"}`` stands for the unpickled object;
- ``{ESCAPE_KEY: {...}}`` stands for a user dict whose keys are taken literally (so a user
  dict that itself holds a marker key survives) and whose values are encoded values.
"""

from __future__ import annotations

import base64
import binascii
import pickle
from typing import Any

PICKLE_KEY = "__knot_pickle__"
ESCAPE_KEY = "__knot_dict__"
MARKER_KEYS = frozenset({PICKLE_KEY, ESCAPE_KEY})


class UndecodableValue(ValueError):
    """A pickled value could not be loaded, most often because the image lacks its module.

    A ValueError, so code that reports a malformed spec reports this too."""


def marker_of(obj: dict) -> str | None:
    """The marker key of ``obj`` if it is a marker object, else None."""
    if len(obj) == 1:
        (key,) = obj
        if key in MARKER_KEYS:
            return key
    return None


def decode_value(obj: Any) -> Any:
    """The original value of ``obj``, which ``encode_value`` made on the host.

    Contract: this unpickles, and unpickling runs code, so call it only on a spec whose
    SHA-256 was checked against the one the host recorded (knot does so before anything in
    the job runs). Raises UndecodableValue when a pickled part cannot be loaded.
    """
    if type(obj) is list:
        return [decode_value(item) for item in obj]
    if type(obj) is not dict:
        return obj
    marker = marker_of(obj)
    if marker == PICKLE_KEY:
        return unpickle(obj[PICKLE_KEY])
    if marker == ESCAPE_KEY:
        obj = obj[ESCAPE_KEY]
    return {key: decode_value(value) for key, value in obj.items()}


def unpickle(text: str) -> Any:
    """Load one base64 pickle, turning the ways it fails into UndecodableValue."""
    try:
        return pickle.loads(base64.b64decode(text, validate=True))
    except ImportError as exc:
        raise UndecodableValue(
            f"a param or config value needs the module {exc.name!r}, which the image lacks: "
            f"{exc}. Pass a plain value, or add the module to the rule's imports."
        ) from exc
    except (AttributeError, EOFError, binascii.Error, pickle.UnpicklingError) as exc:
        raise UndecodableValue(f"a pickled param or config value cannot be loaded: {exc}") from exc
