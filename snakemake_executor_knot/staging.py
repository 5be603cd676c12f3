"""Local mode: with no storage provider, knot carries local files through its own bucket.

Inputs are uploaded before a job is submitted, skipping files whose size and mtime match
what is already there; outputs are downloaded before the job is reported successful,
because Snakemake then checks that they exist locally.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

from boto3.s3.transfer import S3Transfer, TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from .errors import StagingError, aws_error, error_code

_TRANSFER = TransferConfig(max_concurrency=16, multipart_threshold=64 * 1024 * 1024)
_STAMP = "knot-stamp"  # object metadata: "<size>:<mtime_ns>" of the local file uploaded


class LocalStaging:
    """Maps local paths to ``s3://<bucket>/knot/files/<workdir hash>/<path>``."""

    def __init__(self, s3, bucket: str, workdir: str | os.PathLike) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.workdir = Path(workdir).resolve()
        self.prefix = f"knot/files/{workflow_id(self.workdir)}/"
        self._transfer = S3Transfer(s3, _TRANSFER)
        self._uploaded: dict[str, str] = {}
        self._lock = threading.Lock()

    def key_for(self, path: str) -> str:
        p = Path(os.path.normpath(path))
        if p.is_absolute():
            rel = Path("_abs") / p.relative_to(p.anchor)
        else:
            rel = p
        return self.prefix + rel.as_posix()

    def uri_for(self, path: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(path)}"

    def holds(self, uri: str) -> bool:
        """Whether ``uri`` is one of knot's copies of a local file (not a storage object)."""
        return uri.startswith(f"s3://{self.bucket}/{self.prefix}")

    def upload_inputs(self, paths: Iterable[str], rule: str) -> int:
        """Upload what changed; returns the number of files sent."""
        sent = 0
        for path in paths:
            for file in _files_under(Path(path)):
                sent += self._upload_if_changed(file, rule)
        return sent

    def _upload_if_changed(self, file: Path, rule: str) -> int:
        stamp = _stamp(file)
        key = self.key_for(str(file))
        with self._lock:
            if self._uploaded.get(key) == stamp:
                return 0
        try:
            if self._remote_stamp(key) != stamp:
                self._transfer.upload_file(
                    str(file),
                    self.bucket,
                    key,
                    extra_args={"Metadata": {_STAMP: stamp}, "ChecksumAlgorithm": "SHA256"},
                )
                sent = 1
            else:
                sent = 0
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(exc, f"uploading input {file}", rule=rule, service="s3") from exc
        with self._lock:
            self._uploaded[key] = stamp
        return sent

    def _remote_stamp(self, key: str) -> str | None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return head.get("Metadata", {}).get(_STAMP)

    def download_outputs(self, items: Iterable[dict], rule: str, must_exist: bool = True) -> None:
        """Fetch each spec item (``path``, ``uri``, ``directory``) to its local path. A
        missing object is an error only when ``must_exist``."""
        for item in items:
            try:
                if item["directory"]:
                    self._download_prefix(item["uri"], Path(item["path"]))
                else:
                    self._download(item["uri"], Path(item["path"]))
            except ClientError as exc:
                if _is_missing(exc) and not must_exist:
                    continue
                if _is_missing(exc):
                    raise StagingError(
                        f"Rule '{rule}': output {item['path']} is not in S3 ({item['uri']}) "
                        "although the job succeeded. Check the job's log with 'knot logs'."
                    ) from exc
                raise aws_error(exc, "downloading job outputs", rule=rule, service="s3") from exc
            except BotoCoreError as exc:
                raise aws_error(exc, "downloading job outputs", rule=rule, service="s3") from exc

    def _download(self, uri: str, dest: Path) -> None:
        bucket, key = split_uri(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._transfer.download_file(bucket, key, str(dest))
        # The local copy now equals the object, so a later job that takes it as input
        # needs no upload.
        with self._lock:
            self._uploaded[key] = _stamp(dest)

    def _download_prefix(self, uri: str, dest: Path) -> None:
        bucket, prefix = split_uri(uri)
        dest.mkdir(parents=True, exist_ok=True)
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if rel:
                    self._download(f"s3://{bucket}/{obj['Key']}", dest / rel)


WORKFLOW_ID_FILE = Path(".snakemake", "knot", "workflow-id")


def workflow_id(workdir: Path) -> str:
    """This working directory's random id, made on first use and kept in
    .snakemake/knot/workflow-id. A hash of the path would be the same for two machines
    (or two users) with the same path, and they would share their copies in S3."""
    path = workdir / WORKFLOW_ID_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
        return text
    path.parent.mkdir(parents=True, exist_ok=True)
    made = uuid.uuid4().hex
    path.write_text(made + "\n")
    return made


def ensure_bucket(s3, bucket: str, region: str) -> bool:
    """Create the storage prefix's bucket when missing, as Snakemake's S3 storage plugin
    does when it stores a file; jobs write there directly. Returns True if created."""
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if not _is_missing(exc) and error_code(exc) != "NoSuchBucket":
            raise aws_error(exc, f"checking the storage bucket {bucket}", service="s3") from exc
    params: dict = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**params)
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"creating the storage bucket {bucket}", service="s3") from exc
    return True


def _is_missing(exc: ClientError) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound")


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _files_under(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key
