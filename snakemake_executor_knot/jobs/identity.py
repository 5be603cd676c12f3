"""What identifies the content of a job's inputs, so that a job's spec (and its adoption
hash, ``run/adoption.py``) changes when an input does.

Each input item of a spec gets ``"identity"``: the S3 object's ETag for a file (the ETag
changes with the object's bytes; equal bytes uploaded the same way keep it), and for a
folder a SHA-256 over its files: their manifest in knot's bucket (local mode), or each key,
size and ETag under the prefix (storage mode). An input made inside a group job has none.
The runtime ignores the field; it is there to be hashed.

Local files are staged first (``staging.py`` knows their ETags from its own uploads and
HEAD requests); storage objects are asked with one HeadObject each, in parallel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import aws_error, error_code
from ..runtime.contract import GROUP_KIND
from .staging import split_uri

IDENTITY = "identity"
MISSING = "missing"  # no object (yet): Snakemake itself says so if the job needs it
_PARALLEL = 16


def input_items(spec: dict) -> list[dict]:
    """Every input item the job stages in: a group's members' inputs, less those an
    earlier member makes."""
    docs = spec["members"] if spec.get("kind") == GROUP_KIND else [spec]
    return [i for d in docs for i in d["input"]["items"] if not i.get("from_group")]


def set_identities(specs: Iterable[dict], identity_of: Callable[[dict], str]) -> None:
    """Write each input item's identity into the specs, asking once per distinct item."""
    items = [i for spec in specs for i in input_items(spec)]
    keys = {_key(i): i for i in items}
    with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
        found = dict(zip(keys, pool.map(identity_of, keys.values()), strict=True))
    for item in items:
        item[IDENTITY] = found[_key(item)]


def _key(item: dict) -> tuple[str, str, bool]:
    return (item["path"], item["uri"], bool(item.get("directory")))


def object_identity(s3, uri: str, rule: str) -> str:
    """A storage object's ETag, from one HeadObject."""
    bucket, key = split_uri(uri)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return MISSING
        raise aws_error(
            exc, f"reading the identity of input {uri}", rule=rule, service="s3"
        ) from exc
    except BotoCoreError as exc:
        raise aws_error(
            exc, f"reading the identity of input {uri}", rule=rule, service="s3"
        ) from exc
    return f"etag:{head.get('ETag', '')}"


def prefix_identity(s3, uri: str, rule: str) -> str:
    """A storage folder's identity: the SHA-256 of each key, size and ETag under it."""
    bucket, prefix = split_uri(uri)
    digest = hashlib.sha256()
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents") or []:
                line = f"{obj.get('Key')}\t{obj.get('Size')}\t{obj.get('ETag')}\n"
                digest.update(line.encode("utf-8", "surrogateescape"))
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"listing input folder {uri}", rule=rule, service="s3") from exc
    return f"sha256:{digest.hexdigest()}"


def storage_identity(s3, item: dict, rule: str) -> str:
    if item.get("directory"):
        return prefix_identity(s3, item["uri"], rule)
    return object_identity(s3, item["uri"], rule)
