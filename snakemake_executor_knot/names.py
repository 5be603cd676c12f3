"""Content hashes and AWS Batch job names (pure)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

# AWS Batch: 1..128 of [A-Za-z0-9_-], first character a letter or a digit.
MAX_JOB_NAME = 128
_INVALID = re.compile(r"[^A-Za-z0-9_]+")
_NAME_HASH_LEN = 8


def canonical_json(obj: object) -> str:
    """JSON with sorted keys and no spaces, so equal objects give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def short_hash(obj: object, n: int = 16) -> str:
    """First ``n`` hex digits of the sha256 of ``obj``: bytes and str as given,
    anything else as its canonical JSON."""
    if isinstance(obj, bytes):
        data = obj
    elif isinstance(obj, str):
        data = obj.encode()
    else:
        data = canonical_json(obj).encode()
    return hashlib.sha256(data).hexdigest()[:n]


def _sanitise(text: str) -> str:
    # '-' is reserved as the separator between parts, so it is replaced too.
    return _INVALID.sub("_", text).strip("_")


def batch_job_name(rule: str, wildcards: Mapping[str, str], jobid: int) -> str:
    """A valid Batch job name: ``<rule>-<wildcard values...>-j<jobid>-<hash>``.

    The readable part may be lossy (sanitised, truncated), so a short hash of the
    exact (rule, wildcards, jobid) keeps different jobs apart. The jobid suffix alone
    already makes names differ for different jobids, whatever the readable part is.
    """
    if not 0 <= jobid < 10**40:
        raise ValueError(f"jobid must be between 0 and 10**40, not {jobid}")
    digest = short_hash(
        [rule, [[str(k), str(v)] for k, v in wildcards.items()], jobid], _NAME_HASH_LEN
    )
    suffix = f"j{jobid}-{digest}"
    parts = [p for p in (_sanitise(str(x)) for x in (rule, *wildcards.values())) if p]
    readable = "-".join(parts)[: MAX_JOB_NAME - len(suffix) - 1].strip("_-")
    return f"{readable}-{suffix}" if readable else suffix
