"""Moving the job's files between S3 and the working directory, in parallel (s3transfer)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError
from s3transfer.exceptions import RetriesExceededError, S3ValidationError
from s3transfer.manager import TransferConfig, TransferManager

from . import cachestage, digest, links, manifest
from .contract import CHECKSUMS
from .paths import UnsafePath, contained
from .report import JobFailure
from .spec import FileItem, parse_s3_uri

# Every upload carries a SHA-256 checksum that S3 verifies on receipt and stores, so a
# reader can ask for it (HeadObject with ChecksumMode=ENABLED).
UPLOAD_ARGS = {"ChecksumAlgorithm": "SHA256"}
CONCURRENCY = 10
_TRANSFER_ERRORS = (BotoCoreError, ClientError, OSError, RetriesExceededError, S3ValidationError)


@dataclass(frozen=True)
class Transfer:
    """One object to move: ``s3://bucket/key`` <-> the local file ``path``."""

    bucket: str
    key: str
    path: str
    expected: manifest.Entry | None = None  # what the file must be, from a manifest

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def make_s3_client(concurrency: int = CONCURRENCY):
    """The S3 client; endpoint, credentials and region come from the environment."""
    # One pooled connection per transfer thread, or urllib3 discards the extra ones.
    # Standard mode with 8 attempts, as on the host: S3 answers 503 SlowDown under load.
    config = Config(
        max_pool_connections=concurrency,
        retries={"mode": "standard", "max_attempts": 8},
        **CHECKSUMS,
    )
    return boto3.session.Session().client("s3", config=config)


def make_transfer_manager(s3, concurrency: int = CONCURRENCY) -> TransferManager:
    return TransferManager(s3, TransferConfig(max_request_concurrency=concurrency))


def folder_prefix(key: str) -> str:
    return key if not key or key.endswith("/") else key + "/"


def download_plan(item: FileItem, keys: Iterable[str]) -> list[Transfer]:
    """The objects to fetch for ``item``; ``keys`` are those under a directory's prefix."""
    bucket, key = parse_s3_uri(item.uri or "")
    if not item.directory:
        return [Transfer(bucket, key, item.path)]
    prefix = folder_prefix(key)
    plan = []
    for found in keys:
        relative = found[len(prefix) :]
        if not relative or relative.endswith("/"):  # folder marker objects hold no data
            continue
        plan.append(Transfer(bucket, found, placed(item.path, relative, bucket, found)))
    return plan


def placed(folder: str, relative: str, bucket: str, key: str) -> str:
    """Where the object ``key`` of a directory goes: inside ``folder``, or refused."""
    try:
        target = contained(folder, relative, what=f"the key s3://{bucket}/{key}")
    except UnsafePath as exc:
        raise JobFailure(f"{exc}; nothing of this job was run") from exc
    # Named from ``folder`` as given (relative to the working directory), as the spec does.
    return str(Path(folder, target.relative_to(Path(folder).resolve())))


def manifest_plan(s3, item: FileItem) -> list[Transfer] | None:
    """The files of a directory exactly as its manifest lists them, each with the size and
    SHA-256 it must have; None when an optional manifest is absent."""
    bucket, key = parse_s3_uri(item.uri or "")
    prefix = folder_prefix(key)
    entries = read_manifest(s3, item, bucket, manifest.manifest_key(prefix))
    if entries is None:
        return None
    return [
        Transfer(bucket, prefix + e.name, placed(item.path, e.name, bucket, prefix + e.name), e)
        for e in entries
    ]


def read_manifest(s3, item: FileItem, bucket: str, key: str) -> list[manifest.Entry] | None:
    """The entries of a directory's manifest: None when there is none and the item allows
    that (a directory in the user's storage that knot did not write)."""
    where = f"s3://{bucket}/{key}"
    try:
        return manifest.read(s3.get_object(Bucket=bucket, Key=key)["Body"], where)
    except ClientError as exc:
        if item.manifest_optional and _is_missing(exc):
            return None
        raise JobFailure(f"could not read the manifest of directory {item.path}: {exc}") from exc
    except (BotoCoreError, manifest.BadManifest) as exc:
        raise JobFailure(f"could not read the manifest of directory {item.path}: {exc}") from exc


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


def local_files(path: str) -> list[str]:
    """Every file under a folder, relative to it, with '/' separators, sorted."""
    found = []
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), path))
    return sorted(name.replace(os.sep, "/") for name in found)


def upload_plan(item: FileItem) -> list[Transfer]:
    """The objects to write for an existing local ``item`` (every file of a directory). A
    FIFO (a pipe() output) holds nothing to upload, and reading it would wait forever."""
    bucket, key = parse_s3_uri(item.uri or "")
    if is_fifo(item.path):
        return []
    if not os.path.isdir(item.path):
        return [Transfer(bucket, key, item.path)]
    prefix = folder_prefix(key)
    return [
        Transfer(bucket, prefix + name, os.path.join(item.path, name))
        for name in local_files(item.path)
    ]


def is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def list_keys(s3, bucket: str, prefix: str) -> list[str]:
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as exc:
        raise JobFailure(f"could not list s3://{bucket}/{prefix}: {exc}") from exc


def plan_downloads(s3, items: Iterable[FileItem]) -> list[Transfer]:
    plan = []
    for item in items:
        if not item.uri:  # nothing to fetch (the host sent no copy)
            continue
        listed = manifest_plan(s3, item) if item.directory and item.manifest else None
        if listed is not None:
            plan.extend(listed)
            continue
        keys: list[str] = []
        if item.directory:
            bucket, key = parse_s3_uri(item.uri)
            keys = list_keys(s3, bucket, folder_prefix(key))
        plan.extend(download_plan(item, keys))
    return plan


def plan_uploads(items: Iterable[FileItem]) -> list[Transfer]:
    return [t for item in items if item.uri for t in upload_plan(item)]


def download(manager: TransferManager, transfers: list[Transfer]) -> None:
    transfers = cachestage.serve(manager, transfers)  # what the instance's cache did not
    for transfer in transfers:
        os.makedirs(os.path.dirname(transfer.path) or ".", exist_ok=True)
    _wait(transfers, lambda t: manager.download(t.bucket, t.key, t.path), "download")
    wrong = [
        f"{t.uri} ({t.path}): {problem}"
        for t in transfers
        if t.expected and (problem := manifest.mismatch(t.path, t.expected))
    ]
    if wrong:
        raise JobFailure("downloaded files differ from their manifest:\n  " + "\n  ".join(wrong))
    wrong = whole_file_problems(manager.client, transfers)
    if wrong:
        raise JobFailure("downloaded files are not what was uploaded:\n  " + "\n  ".join(wrong))


def whole_file_problems(s3, transfers: list[Transfer]) -> list[str]:
    """Each large downloaded file checked against the SHA-256 its upload recorded (see
    digest.py); a file that fails is removed."""
    problems = []
    for t in transfers:
        if t.expected is not None or not digest.needs_digest(t.path):
            continue  # checked against its manifest, or one GET that S3's checksum covered
        try:
            metadata = s3.head_object(Bucket=t.bucket, Key=t.key).get("Metadata")
        except (BotoCoreError, ClientError) as exc:
            problems.append(f"{t.uri} ({t.path}): could not read its recorded SHA-256: {exc}")
            continue
        if digest.recorded(metadata) is None:
            # Not uploaded by knot (e.g. a storage-mode input the user put there).
            note = f"knot: {t.uri} records no SHA-256, so its download is not verified whole"
            print(note, file=sys.stderr)
            continue
        problem = digest.mismatch(t.path, metadata)
        if problem:
            os.remove(t.path)
            problems.append(f"{t.uri} ({t.path}): corrupted, nothing kept: {problem}")
    return problems


def upload(manager: TransferManager, transfers: list[Transfer]) -> None:
    def submit(t: Transfer):
        metadata = digest.upload_metadata(t.path) | links.link_metadata(t.path)
        extra = {**UPLOAD_ARGS, "Metadata": metadata} if metadata else UPLOAD_ARGS
        return manager.upload(t.path, t.bucket, t.key, extra_args=extra)

    _wait(transfers, submit, "upload")


def upload_manifests(s3, items: Iterable[FileItem]) -> None:
    """After its files, each directory output with ``manifest`` set gets its manifest, so
    that a manifest in S3 means every file it lists is there."""
    for item in items:
        if not (item.directory and item.manifest and item.uri):
            continue
        bucket, key = parse_s3_uri(item.uri)
        body = manifest.encode(manifest.describe(item.path, local_files(item.path)))
        try:
            s3.put_object(Bucket=bucket, Key=manifest.manifest_key(key), Body=body, **UPLOAD_ARGS)
        except (BotoCoreError, ClientError) as exc:
            raise JobFailure(f"could not upload the manifest of {item.path}: {exc}") from exc


def _wait(transfers: list[Transfer], submit: Callable, verb: str) -> None:
    """Submit all transfers, wait for all, and report every one that failed."""
    futures = [(transfer, submit(transfer)) for transfer in transfers]
    failed = []
    for transfer, future in futures:
        try:
            future.result()
        except FlexibleChecksumError as exc:
            failed.append(f"{transfer.uri} ({transfer.path}): corrupted, nothing kept: {exc}")
        except _TRANSFER_ERRORS as exc:
            failed.append(f"{transfer.uri} ({transfer.path}): {exc}")
    if failed:
        raise JobFailure(
            f"could not {verb} {len(failed)} of {len(transfers)} files:\n  " + "\n  ".join(failed)
        )
