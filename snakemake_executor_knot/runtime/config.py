"""The workflow's config, fetched once per job through the spec's reference and checked
against the SHA-256 the reference holds before anything decodes it (the host writes it:
``jobs/config.py``).

The spec is already checked against the digest SubmitJob carries, so the reference is the
host's; the object it names is checked here, since the config may hold pickles, and
unpickling runs code. A config object that is missing, changed or not a JSON object fails
the job: it never runs with another config, nor with none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .report import JobFailure
from .spec import parse_s3_uri

CONFIG_REF = "config_ref"  # the spec's key for the reference
_SHA256 = re.compile(r"[0-9a-f]{64}")


def with_config(s3, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with ``config`` set to the encoded config (``values.py`` decodes it) from
    the object its reference names, or to {} when it has none. A ``config`` the spec itself
    holds is never used: only the checked object counts."""
    ref = spec.get(CONFIG_REF)
    return {**spec, "config": {} if ref is None else fetch_config(s3, ref)}


def fetch_config(s3, ref: Any) -> Any:
    """The encoded config the reference names, once its SHA-256 matches."""
    uri, digest = _checked_reference(ref)
    bucket, key = parse_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise JobFailure(
            f"could not read the workflow's config {uri}: {exc}. Check that the job role may "
            "read knot's bucket and that the object was not removed by the bucket's "
            "lifecycle rule (run the workflow again to write it anew)."
        ) from exc
    actual = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(actual, digest):
        raise JobFailure(
            f"the workflow's config {uri} failed its integrity check: its SHA-256 is "
            f"{actual}, but the job spec says {digest}. It was changed after knot wrote it, "
            "so nothing was run. Run the workflow again; if this repeats, check who else "
            "can write to knot's bucket."
        )
    return _config_document(body, uri)


def _checked_reference(ref: Any) -> tuple[str, str]:
    if not isinstance(ref, dict):
        raise JobFailure(f"the job spec's {CONFIG_REF} is {type(ref).__name__}, not an object")
    uri, digest = ref.get("uri"), ref.get("sha256")
    if not isinstance(uri, str) or not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise JobFailure(
            f"the job spec's {CONFIG_REF} must hold a 'uri' and a 'sha256' of 64 lower-case "
            f"hex digits; it holds {sorted(ref)}"
        )
    return uri, digest


def _config_document(body: bytes, uri: str) -> Any:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise JobFailure(f"the workflow's config {uri} is not valid JSON: {exc}") from exc
    # A module's own config may be a list (`config: ["AAA"]`); the workflow's is a mapping.
    if not isinstance(document, dict | list):
        raise JobFailure(f"the workflow's config {uri} is not a JSON object or list")
    return document
