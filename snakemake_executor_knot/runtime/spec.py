"""Find, fetch and check the job spec (version 1, see docs/internals.md)."""

from __future__ import annotations

import hmac
import json
import os
import posixpath
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .contract import (
    ARRAY_INDEX_ENV,
    EXTERNAL_DIR,
    GROUP_KIND,
    JOB_ID_ENV,
    MANIFEST_IF_PRESENT,
    NORUN_KIND,
    SPEC_DIGEST_ENV,
    SPEC_INDEX_ENV,
    SPEC_RECORD_ENV,
    SPEC_URI_ENV,
    SPEC_VERSION,
)
from .integrity import root_from_proof
from .paths import UnsafePath, contained
from .report import JobFailure

KINDS = ("run", "shell", "script", NORUN_KIND, GROUP_KIND)


@dataclass(frozen=True)
class FileItem:
    """One input/output/log file: the local ``path`` and its S3 ``uri``. A directory with
    ``manifest`` set is exactly what its manifest in S3 lists; with ``manifest_optional``
    too (the user's storage), one without a manifest is every file under its prefix."""

    path: str
    uri: str | None
    directory: bool = False
    manifest: bool = False
    manifest_optional: bool = False
    touch: bool = False  # a touch() output: the job creates it if the rule did not
    non_empty: bool = False  # ensure(non_empty=True): an empty file fails the job
    checksum: str | None = None  # ensure(sha256=...): "<algorithm>:<hex digest>"


def array_index(env: Mapping[str, str]) -> str:
    """This job's array index; "0" for a job that is not an array child.

    AWS Batch sets AWS_BATCH_JOB_ARRAY_INDEX. moto's Batch sets only AWS_BATCH_JOB_ID,
    which for an array child ends in ``:<index>``, so fall back to that suffix. A child
    submitted again alone carries its index in KNOT_SPEC_INDEX.
    """
    index = env.get(SPEC_INDEX_ENV) or env.get(ARRAY_INDEX_ENV)
    if index:
        return index
    _, sep, tail = env.get(JOB_ID_ENV, "").rpartition(":")
    return tail if sep and tail.isdigit() else "0"


@dataclass(frozen=True)
class SpecLocation:
    """Where this job's spec is: an S3 object, and the byte range of its record in it
    (``None``: the whole object)."""

    uri: str
    digest: str  # the Merkle root of the object's records, from SubmitJob
    index: int = 0  # this job's record
    byte_range: tuple[int, int] | None = None  # first and last byte, inclusive

    def describe(self) -> str:
        if self.byte_range is None:
            return self.uri
        return f"{self.uri} (bytes {self.byte_range[0]}-{self.byte_range[1]})"


def spec_location(env: Mapping[str, str]) -> SpecLocation:
    """From KNOT_SPEC_URI, KNOT_SPEC_SHA256 and KNOT_SPEC_RECORD_BYTES: the object holds
    one record of that many bytes per array child, in index order."""
    uri, digest = env.get(SPEC_URI_ENV), env.get(SPEC_DIGEST_ENV)
    if not uri or not digest:
        raise JobFailure(
            f"{SPEC_URI_ENV} and {SPEC_DIGEST_ENV} must both be set; this image runs knot "
            "jobs, and knot's SubmitJob sets them (where the job spec is, and its SHA-256)."
        )
    index = int(array_index(env))
    given = env.get(SPEC_RECORD_ENV)
    if not given:
        return SpecLocation(uri, digest, index)
    width = int(given) if given.isdigit() else 0
    if width < 1:
        raise JobFailure(f"{SPEC_RECORD_ENV} is {given!r}, not a positive whole number")
    start = index * width
    return SpecLocation(uri, digest, index, (start, start + width - 1))


def verified_document(record: bytes, where: SpecLocation) -> bytes:
    """The spec document of a record, once its Merkle proof leads to the digest SubmitJob
    carries. Nothing in the spec is decoded before this check (params may be pickles)."""
    try:
        proof, document = split_record(record)
        root = root_from_proof(where.index, document, proof)
    except ValueError as exc:  # no proof line, or a non-ASCII or non-hex one
        raise _tampered(where, f"its proof is malformed ({exc})") from exc
    if not hmac.compare_digest(root, where.digest):
        raise _tampered(where, "it does not match the SHA-256 its submission carries")
    return document


def split_record(record: bytes) -> tuple[list[str], bytes]:
    """A spec record's Merkle proof steps and its document (jobspec.spec_records)."""
    proof_line, newline, document = record.rstrip(b" \n").partition(b"\n")
    if not newline:
        raise ValueError("the record has no proof line")
    return (proof_line.decode("ascii").split(",") if proof_line else []), document


def _tampered(where: SpecLocation, why: str) -> JobFailure:
    return JobFailure(
        f"the job spec {where.describe()} failed its integrity check: {why}. It was changed "
        "after knot wrote it, so nothing was run. Run the workflow again; if this repeats, "
        "check who else can write to knot's bucket."
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; the key may be empty or end in ``/``."""
    if not uri.startswith("s3://"):
        raise JobFailure(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise JobFailure(f"{uri!r} names no bucket")
    return bucket, key


def parse_spec(text: str | bytes, uri: str) -> dict[str, Any]:
    """Decode and check a spec document; errors name the URI and the problem."""
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise JobFailure(f"the job spec at {uri} is not valid JSON: {exc}") from exc
    check_spec(spec, uri)
    return spec


def check_spec(spec: Any, uri: str) -> None:
    if not isinstance(spec, dict):
        raise JobFailure(f"the job spec at {uri} is not a JSON object")
    version = spec.get("version")
    if version != SPEC_VERSION:
        raise JobFailure(
            f"the job spec at {uri} has version {version!r} but this runtime reads version "
            f"{SPEC_VERSION}; the image and the knot that submitted the job differ, rebuild "
            "the image with the same knot version."
        )
    if spec.get("kind") not in KINDS:
        raise JobFailure(f"the job spec at {uri} has kind {spec.get('kind')!r}, not one of {KINDS}")
    for key in ("rule", "jobid"):
        if key not in spec:
            raise JobFailure(f"the job spec at {uri} lacks {key!r}")
    threads = spec.get("threads")
    if threads is not None and (type(threads) is not int or threads < 0):
        raise JobFailure(f"the job spec at {uri} has threads {threads!r}, not a count")


def file_items(spec: dict[str, Any], section: str) -> list[FileItem]:
    """The items of a file section (input, output or log) of the spec, each path checked
    to stay inside the working directory."""
    items = (spec.get(section) or {}).get("items") or []
    return [
        FileItem(
            local_path(i["path"], section),
            i.get("uri"),
            bool(i.get("directory")),
            bool(i.get("manifest")),
            i.get("manifest") == MANIFEST_IF_PRESENT,
            i.get("touch") is True,
            i.get("non_empty") is True,
            _checksum(i.get("checksum")),
        )
        for i in items
    ]


_CHECKSUM = re.compile(r"(sha256|md5|sha1):[0-9a-f]{32,64}")


def _checksum(value: Any) -> str | None:
    """An ``ensure()`` checksum as the host wrote it; anything else is a damaged spec."""
    if value is None:
        return None
    if not isinstance(value, str) or not _CHECKSUM.fullmatch(value):
        raise JobFailure(f"the job spec has an output checksum that is not one: {value!r}")
    return value


MAX_REPEATS = 1000


def benchmark_item(spec: dict[str, Any]) -> FileItem | None:
    bench = spec.get("benchmark")
    return FileItem(local_path(bench["path"], "benchmark"), bench.get("uri")) if bench else None


def benchmark_repeats(spec: dict[str, Any]) -> int:
    """How often the rule runs: ``benchmark: repeat(path, n)`` asks n times (1 to 1000)."""
    bench = spec.get("benchmark") or {}
    repeat = bench.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_REPEATS:
        raise ValueError(f"the benchmark's repeat count is not 1 to {MAX_REPEATS}: {repeat!r}")
    return repeat


def local_path(path: Any, section: str) -> str:
    """A spec path, as given, once it is known to stay inside the job's working directory
    (``/work`` in the image; storage-mode paths are ``.snakemake/storage/...`` inside it).
    The host sends paths relative to its own working directory, so an absolute path or a
    ``..`` part here means a spec knot did not write."""
    checked = path
    if section == "input" and isinstance(path, str) and path.startswith(external_root() + "/"):
        # Named absolute by with_external_inputs; cut, not normalised, so '..' stays seen.
        checked = path[len(os.getcwd().rstrip("/")) + 1 :]
    try:
        contained(os.getcwd(), checked, what=f"the {section} path")
    except UnsafePath as exc:
        raise JobFailure(
            f"the job spec is unsafe: {exc}. Every file a job writes must lie inside its "
            "working directory."
        ) from exc
    return path


def with_external_inputs(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with each input the host names by an absolute path (one outside its
    working directory, such as reference data) renamed ``<cwd>/EXTERNAL_DIR/<path>``: the
    job stages it there, and the rule's code sees that name, absolute as on the host (a
    shell command may ``cd`` before reading it). Only inputs: an absolute output stays as
    it is, and ``local_path`` refuses it."""
    section = spec.get("input")
    if not isinstance(section, dict) or not isinstance(section.get("items"), list):
        return spec
    items = [_external(item) for item in section["items"]]
    return {**spec, "input": {**section, "items": items}}


def _external(item: Any) -> Any:
    path = item.get("path") if isinstance(item, dict) else None
    if not isinstance(path, str) or not path.startswith("/"):
        return item
    return {**item, "path": posixpath.join(external_root(), path.lstrip("/"))}


def external_root() -> str:
    return posixpath.join(os.getcwd(), EXTERNAL_DIR)


def is_external(item: FileItem) -> bool:
    return item.path.startswith(external_root() + "/")


def make_read_only(path: str) -> None:
    """Take write permission away from a staged external input (a file, or a folder and
    everything in it): reference data is only read, as on the host."""
    for dirpath, dirnames, filenames in os.walk(path) if os.path.isdir(path) else ():
        for name in dirnames + filenames:
            _drop_write(os.path.join(dirpath, name))
    _drop_write(path)


def _drop_write(path: str) -> None:
    mode = os.lstat(path).st_mode
    if not stat.S_ISLNK(mode):
        os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def fetch_spec(s3, where: SpecLocation) -> dict[str, Any]:
    """Download and parse this job's spec document."""
    bucket, key = parse_s3_uri(where.uri)
    ranged = {} if where.byte_range is None else {"Range": "bytes={}-{}".format(*where.byte_range)}
    try:
        body = s3.get_object(Bucket=bucket, Key=key, **ranged)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise JobFailure(
            f"could not read the job spec {where.describe()}: {exc}. Check that the job role "
            "may read the bucket and that the spec was not removed by the bucket's "
            "lifecycle rule."
        ) from exc
    return parse_spec(verified_document(body, where), where.describe())
