"""Fidelity fixes for moto's S3: bucket policy conditions cannot be judged over plain
HTTP, so conditional statements are left out of moto's policy check; conditional writes
and deletes (If-Match, If-None-Match) are atomic, as on S3; a ranged GET reads only its
range (speed only: moto otherwise copies the whole object for every range); a prefix
listing visits only the keys under the prefix, from a sorted index (speed only).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import threading
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.models import (
    FakeBucket,
    FakeDeleteMarker,
    FakeKey,
    FakeTableStorageBucket,
    S3Backend,
)
from moto.s3.responses import S3Response
from moto.s3.utils import _VersionedKeyStore

from .descriptors import getter, stored


def unconditional_policy(policy: str) -> str:
    """A bucket policy without its conditional statements. moto evaluates bucket policies
    but ignores conditions, so the TLS-only Deny (aws:SecureTransport=false) that knot's
    bucket carries would deny every request. On AWS knot always uses TLS and that Deny
    never applies; the emulator speaks plain HTTP and cannot judge conditions at all."""
    document = json.loads(policy)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    document["Statement"] = [st for st in statements if "Condition" not in st]
    return json.dumps(document)


def patch_bucket_policy() -> None:
    # Named ``self``, as in the method it replaces.
    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = IAMPolicy(unconditional_policy(self.policy.decode()))
        return policy.is_action_permitted(action, resource)

    # Replacing moto's method is the point here, which mypy's method-assign forbids.
    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


_CONDITIONS = ("If-Match", "If-None-Match")
_conditional = threading.Lock()


def atomic_conditional_writes() -> None:
    """moto checks a PutObject's or DeleteObject's If-Match / If-None-Match and then
    writes, in two steps, so two conditional writes at once could both pass (two runs
    both taking the stack lease, aws/lease.py). S3 decides them atomically: here they are
    answered one at a time. Idempotent."""
    if getattr(S3Response, "_knot_atomic_conditions", False):
        return
    for name in ("put_object", "delete_object"):
        setattr(S3Response, name, _one_conditional_at_a_time(getattr(S3Response, name)))
    S3Response._knot_atomic_conditions = True  # type: ignore[attr-defined]


def _one_conditional_at_a_time(method: Any) -> Any:
    @functools.wraps(method)
    def guarded(self: S3Response) -> Any:
        if not any(self.headers.get(header) for header in _CONDITIONS):
            return method(self)
        with _conditional:
            return method(self)

    return guarded


class KeyWindow:
    """A key's bytes as moto's ranged GET uses them: it takes the whole value, asks its
    length and slices it. This reads only the slice from the key's buffer, so a multipart
    download of a large object does not copy the whole object once per part."""

    def __init__(self, key: FakeKey) -> None:
        self._key = key

    def __len__(self) -> int:  # also its truth value, as for bytes
        return self._key.size

    def __getitem__(self, part: slice) -> bytes:
        start, stop, step = part.indices(len(self))
        if step != 1:
            raise ValueError("only contiguous ranges are read")
        with self._key.lock:
            self._key._value_buffer.seek(start)
            return self._key._value_buffer.read(max(0, stop - start))


_ranged_get = threading.local()


def patch_ranged_reads() -> None:
    """While a plain GetObject with a Range header is answered, ``FakeKey.value`` is a
    window onto the buffer. Whatever moto returns unsliced is read in full before it
    leaves, so responses are byte for byte what moto sends. Idempotent."""
    if getattr(S3Response, "_knot_ranged_reads", False):
        return
    whole_value = stored(FakeKey, "value", property)
    read_whole = getter(whole_value)
    key_response = S3Response.key_response

    # Named ``self``, as in the methods they replace.
    def value(self: FakeKey) -> Any:
        return KeyWindow(self) if getattr(_ranged_get, "on", False) else read_whole(self)

    def ranged_key_response(
        self: S3Response, request: Any, full_url: str, headers: dict[str, Any]
    ) -> tuple[int, dict[str, Any], str | bytes]:
        plain_get = request.method == "GET" and "?" not in full_url
        if not (plain_get and request.headers.get("range")):
            return key_response(self, request, full_url, headers)
        _ranged_get.on = True
        try:
            status, out_headers, body = key_response(self, request, full_url, headers)
        finally:
            _ranged_get.on = False
        return status, out_headers, body[:] if isinstance(body, KeyWindow) else body

    # Replacing moto's property and method is the point here, which mypy's method-assign
    # forbids; it also takes FakeKey.value for the function its property wraps.
    FakeKey.value = property(value, whole_value.fset)  # type: ignore[method-assign, assignment]
    S3Response.key_response = ranged_key_response  # type: ignore[method-assign]
    S3Response._knot_ranged_reads = True  # type: ignore[attr-defined]


# One lock for every bucket's index: a Lock cannot be deep-copied or pickled, and moto
# copies and pickles its backends, so it must not live on the key store.
_index_lock = threading.RLock()


def _index(store: Any) -> list[str]:
    """The sorted names of ``store`` (a bucket's ``_VersionedKeyStore``), rebuilt when its
    length says some change went past the hooks (a ``dict`` method this patch does not
    wrap, or a copy of the store)."""
    names = store.__dict__.get("_knot_sorted")
    if names is None or len(names) != dict.__len__(store):
        names = sorted(dict.keys(store))
        store.__dict__["_knot_sorted"] = names
    return names


def names_under(store: Any, prefix: str) -> list[str]:
    """The names in ``store`` that start with ``prefix``, in order: a binary search for the
    first, then one step per name found, so O(log n + k)."""
    with _index_lock:
        names = _index(store)
        start = bisect.bisect_left(names, prefix)
        found = []
        for name in itertools.islice(names, start, None):
            if not name.startswith(prefix):
                break
            found.append(name)
        return found


def _track_additions(method: Any) -> Any:
    @functools.wraps(method)
    def adding(self: Any, key: str, value: Any) -> Any:
        with _index_lock:
            new = not dict.__contains__(self, key)
            result = method(self, key, value)
            names = self.__dict__.get("_knot_sorted")
            # Only an index that was whole before this name keeps up; any other is rebuilt
            # at the next listing.
            if new and names is not None and len(names) + 1 == dict.__len__(self):
                bisect.insort(names, key)
            return result

    return adding


def _track_removals(method: Any) -> Any:
    @functools.wraps(method)
    def removing(self: Any, key: str, *args: Any) -> Any:
        with _index_lock:
            result = method(self, key, *args)
            names = self.__dict__.get("_knot_sorted")
            if names is not None and not dict.__contains__(self, key):
                at = bisect.bisect_left(names, key)
                if at < len(names) and names[at] == key:
                    del names[at]
            return result

    return removing


def _listed(bucket: FakeBucket, prefix: str | None, delimiter: str | None) -> tuple:
    """The keys and common prefixes under ``prefix``, as moto's scan finds them, from the
    index: only the names that start with the prefix are visited."""
    prefix = prefix or ""
    keys = []
    folders = set()
    for name in names_under(bucket.keys, prefix):
        versions = bucket.keys.getlist(name) or []
        if not versions:
            continue
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            folders.add(prefix + rest.split(delimiter)[0] + delimiter)
        elif not isinstance(versions[-1], FakeDeleteMarker):
            keys.append(versions[-1])
    return keys, sorted(folders)


def patch_sorted_listing() -> None:
    """moto lists a prefix by copying and scanning every key of the bucket, so a listing
    costs O(n) in the bucket's size, and a run's listings O(n²) (10,000 jobs took 12.6
    times as long as 1,000). S3 lists from its index. Here each bucket's key store keeps
    its names sorted, updated where moto adds or removes a name, and ListObjects (V2
    builds on it) visits only the names under the prefix. What is returned is what
    moto's own scan returns: the same keys, folders, markers and tokens. Idempotent."""
    if getattr(S3Backend, "_knot_sorted_listing", False):
        return
    for name in ("__setitem__", "setlist"):
        setattr(_VersionedKeyStore, name, _track_additions(getattr(_VersionedKeyStore, name)))
    for name in ("pop", "__delitem__"):
        setattr(_VersionedKeyStore, name, _track_removals(getattr(_VersionedKeyStore, name)))
    original = S3Backend.list_objects

    # Named ``self``, as in the method it replaces.
    def list_objects(
        self: S3Backend,
        bucket: FakeBucket,
        prefix: str | None,
        delimiter: str | None,
        marker: str | None,
        max_keys: int | None,
    ) -> Any:
        if isinstance(bucket, FakeTableStorageBucket):
            return original(self, bucket, prefix, delimiter, marker, max_keys)
        keys, folders = _listed(bucket, prefix, delimiter)
        if marker:
            after = self._pagination_tokens.get(marker) or marker
            keys = self._get_results_from_token(keys, after)
        if max_keys is None:
            return keys, folders, False, None
        keys, truncated, next_marker = self._truncate_result(keys, max_keys)
        return keys, folders, truncated, next_marker

    S3Backend.list_objects = list_objects  # type: ignore[method-assign]
    S3Backend._knot_scan_listing = original  # type: ignore[attr-defined]  # tests compare
    S3Backend._knot_sorted_listing = True  # type: ignore[attr-defined]
