"""Local mode: with no storage provider, knot carries local files through its own bucket.

Inputs are uploaded before a job is submitted, skipping files whose size and mtime match
what is already there; outputs are downloaded before the job is reported successful,
because Snakemake then checks that they exist locally. In storage mode, a checkpoint's
directory output comes home the same way, following its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TypeGuard

from boto3.s3.transfer import S3Transfer, TransferConfig, create_transfer_manager
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError
from s3transfer.subscribers import BaseSubscriber

from ..errors import StagingError, aws_error, error_code
from ..runtime import digest, links, manifest
from ..runtime.paths import UnsafePath, contained
from .paths import directory_files

_TRANSFER = TransferConfig(max_concurrency=16, multipart_threshold=64 * 1024 * 1024)
_STAMP = "knot-stamp"  # object metadata: "<size>:<mtime_ns>" of the local file uploaded


class LocalStaging:
    """Maps local paths to ``s3://<bucket>/knot/files/<workdir hash>/<path>``."""

    def __init__(self, s3, bucket: str, workdir: str | os.PathLike) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.workdir = Path(workdir).resolve()
        self.prefix = f"knot/files/{workflow_id(self.workdir)}/"
        # Downloads go through the manager itself, told each object's size: the HeadObject
        # knot makes anyway (metadata: SHA-256, link target) then replaces s3transfer's own.
        self._manager = create_transfer_manager(s3, _TRANSFER)
        self._transfer = S3Transfer(manager=self._manager)
        self._uploaded: dict[str, str] = {}
        self._lock = threading.Lock()
        self._manifests: dict[str, bytes] = {}  # manifest key -> body last uploaded
        self._hashes: dict[tuple[str, str], str] = {}  # (path, stamp) -> sha256
        self._identities: dict[str, tuple[str, str]] = {}  # key -> (local stamp, identity)

    def key_for(self, path: str) -> str:
        """A path inside the working directory keeps its relative name; one outside it
        (read-only reference data) goes under ``_abs/`` by its absolute name, so no key
        ever holds a '..' part."""
        full = Path(os.path.abspath(path))
        if full == self.workdir or self.workdir in full.parents:
            return self.prefix + full.relative_to(self.workdir).as_posix()
        return self.prefix + (Path("_abs") / full.relative_to(full.anchor)).as_posix()

    def uri_for(self, path: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(path)}"

    def holds(self, uri: str) -> bool:
        """Whether ``uri`` is one of knot's copies of a local file (not a storage object)."""
        return uri.startswith(f"s3://{self.bucket}/{self.prefix}")

    def upload_inputs(self, paths: Iterable[str], rule: str) -> int:
        """Upload what changed; returns the number of files sent."""
        sent = 0
        for path in paths:
            if not os.path.isdir(path):
                sent += self._upload_if_changed(Path(path), rule)
                continue
            files = directory_files(Path(path), self.workdir, rule)
            for file in files:
                sent += self._upload_if_changed(file, rule)
            self._upload_manifest(Path(path), files, rule)
        return sent

    def _upload_manifest(self, folder: Path, files: list[Path], rule: str) -> None:
        """A directory input is exactly its current files: its manifest tells the job
        which keys under the prefix to fetch (files deleted locally stay in S3)."""
        entries = [self._entry(folder, file) for file in files]
        key = manifest.manifest_key(self.key_for(str(folder)))
        body = manifest.encode(entries)
        with self._lock:
            if self._manifests.get(key) == body:
                return
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(
                exc, f"uploading the manifest of {folder}", rule=rule, service="s3"
            ) from exc
        with self._lock:
            self._manifests[key] = body

    def _entry(self, folder: Path, file: Path) -> manifest.Entry:
        """The manifest entry of a file, hashed once per (path, size, mtime)."""
        stamp = (str(file), _stamp(file))
        with self._lock:
            digest = self._hashes.get(stamp)
        if digest is None:
            digest = manifest.sha256_file(file)
            with self._lock:
                self._hashes[stamp] = digest
        name = file.relative_to(folder).as_posix()
        return manifest.Entry(name, file.stat().st_size, digest)

    def _upload_if_changed(self, file: Path, rule: str) -> int:
        stamp = _stamp(file)
        key = self.key_for(str(file))
        with self._lock:
            if self._uploaded.get(key) == stamp:
                return 0
        try:
            head = self._head(key)
            if (head or {}).get("Metadata", {}).get(_STAMP) != stamp:
                metadata = {_STAMP: stamp, **digest.upload_metadata(file)}
                self._transfer.upload_file(
                    str(file),
                    self.bucket,
                    key,
                    extra_args={"Metadata": metadata, "ChecksumAlgorithm": "SHA256"},
                )
                sent = 1
            else:
                sent = 0
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(exc, f"uploading input {file}", rule=rule, service="s3") from exc
        with self._lock:
            self._uploaded[key] = stamp
            if sent or head is None:
                self._identities.pop(key, None)
            else:
                self._identities[key] = (stamp, object_identity(head))
        return sent

    def _head(self, key: str) -> dict | None:
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def identity(self, item: dict, rule: str) -> str:
        """What identifies a staged input's content (``identity.py``): a file's object
        identity (``object_identity``; known from staging, else one HeadObject), a
        folder's manifest SHA-256.
        Call after ``upload_inputs``: the object then holds the local file's bytes."""
        path = Path(item["path"])
        if item.get("directory"):
            entries = [self._entry(path, f) for f in directory_files(path, self.workdir, rule)]
            return "sha256:" + hashlib.sha256(manifest.encode(entries)).hexdigest()
        key, stamp = self.key_for(str(path)), _stamp(path)
        with self._lock:
            known = self._identities.get(key)
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            head = self._head(key)
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(
                exc, f"reading the identity of input {path}", rule=rule, service="s3"
            ) from exc
        found = object_identity(head or {})
        with self._lock:
            self._identities[key] = (stamp, found)
        return found

    def download_outputs(self, items: Iterable[dict], rule: str, must_exist: bool = True) -> None:
        """Fetch each spec item (``path``, ``uri``, ``directory``) to its local path. A
        missing object is an error only when ``must_exist``. An output the job made as a
        symbolic link becomes one again once every item is home (its target may be one of
        them), where that is safe (runtime/links.py)."""
        made_links: list[tuple[Path, str]] = []
        for item in items:
            try:
                dest = self.local_dest(item["path"], rule)
                if item["directory"]:
                    self._download_directory(item["uri"], dest, rule)
                elif target := self._download(item["uri"], dest, rule):
                    made_links.append((dest, target))
            except ClientError as exc:
                if _is_missing(exc) and not must_exist:
                    continue
                if _is_missing(exc):
                    raise StagingError(
                        f"Rule '{rule}': output {item['path']} is not in S3 ({item['uri']}) "
                        "although the job succeeded. Check the job's log with 'knot logs'."
                    ) from exc
                raise aws_error(exc, "downloading job outputs", rule=rule, service="s3") from exc
            except FlexibleChecksumError as exc:
                raise StagingError(
                    f"Rule '{rule}': output {item['path']} ({item['uri']}) arrived corrupted: "
                    f"{exc}. Nothing was written; run the workflow again to fetch it anew."
                ) from exc
            except BotoCoreError as exc:
                raise aws_error(exc, "downloading job outputs", rule=rule, service="s3") from exc
        for dest, target in made_links:
            links.relink(dest, target, self.workdir)

    def retrieve_directory(self, uri: str, path: str, rule: str) -> None:
        """Storage mode: a directory output the host must read (a checkpoint's) brought to
        its local path, replacing what was there: exactly the files the job's manifest
        lists, never the rest of the prefix (an earlier attempt's or run's files)."""
        dest = self.local_dest(path, rule)
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        folder = uri if uri.endswith("/") else uri + "/"
        self.download_outputs([{"path": path, "uri": folder, "directory": True}], rule)

    def local_dest(self, path: str, rule: str) -> Path:
        """Where a spec path is written: inside the working directory, or refused."""
        relative = os.path.relpath(os.path.abspath(path), self.workdir)
        return self._contained(self.workdir, relative, f"the job's file {path!r}", rule)

    def _contained(self, root: Path, relative: str, what: str, rule: str) -> Path:
        try:
            return contained(root, relative, what=what)
        except UnsafePath as exc:
            raise StagingError(f"Rule '{rule}': {exc}. Nothing was written there.") from exc

    def _download(self, uri: str, dest: Path, rule: str, size: int | None = None) -> str | None:
        """One object to ``dest``; the link target its metadata records, if any. With its
        ``size`` known (a manifest's entry, checked by the caller), no HeadObject."""
        bucket, key = split_uri(uri)
        head = self.s3.head_object(Bucket=bucket, Key=key) if size is None else {}
        whole_check = size is None
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():  # never write through a link an earlier run left there
            dest.unlink()
        known = _KnownSize(head["ContentLength"] if size is None else size)
        self._manager.download(bucket, key, str(dest), subscribers=[known]).result()
        if whole_check and digest.needs_digest(dest):
            self._check_whole(bucket, key, dest, head.get("Metadata"), rule)
        # The local copy now equals the object, so a later job that takes it as input
        # needs no upload.
        with self._lock:
            self._uploaded[key] = _stamp(dest)
            self._identities.pop(key, None)
        return links.recorded_target(head.get("Metadata"))

    def _check_whole(
        self, bucket: str, key: str, dest: Path, metadata: dict | None, rule: str
    ) -> None:
        """A large file may have been uploaded in parts, which S3's checksum does not
        cover: it must match the SHA-256 the job's upload recorded (digest.py). Every
        such object in knot's bucket comes from knot, so a missing record fails too."""
        problem = digest.mismatch(dest, metadata)
        if digest.recorded(metadata) is None:
            problem = "it records no SHA-256, so knot cannot tell that it arrived whole"
        if problem:
            dest.unlink()
            raise StagingError(
                f"Rule '{rule}': s3://{bucket}/{key} arrived corrupted: {problem}. Nothing "
                "was kept; run "
                "the workflow again to rerun the job."
            )

    def _download_directory(self, uri: str, dest: Path, rule: str) -> None:
        """Exactly the files the job's manifest lists, each checked against it: the prefix
        may also hold files of earlier runs, which the job role could not delete."""
        bucket, prefix = split_uri(uri)
        entries = self._manifest(bucket, prefix, dest, rule)
        dest.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            key = prefix + entry.name
            target = self._contained(dest, entry.name, f"the key s3://{bucket}/{key}", rule)
            self._download(f"s3://{bucket}/{key}", target, rule, size=entry.size)
            problem = manifest.mismatch(target, entry)  # checks the whole file already
            if problem:
                target.unlink()
                raise StagingError(
                    f"Rule '{rule}': s3://{bucket}/{key} downloaded as {problem}; the "
                    "file was removed. Run the workflow again to rerun the job."
                )

    def _manifest(self, bucket: str, prefix: str, dest: Path, rule: str) -> list:
        """The manifest's entries; read no further than its size cap, and refused, like any
        malformed one, when nested too deeply for the JSON parser."""
        key = manifest.manifest_key(prefix)
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
            return manifest.read(body, f"s3://{bucket}/{key}")
        except manifest.BadManifest as exc:
            raise StagingError(f"Rule '{rule}': {exc}") from exc
        except ClientError as exc:
            if not _is_missing(exc):
                raise
            raise StagingError(
                f"Rule '{rule}': the directory output {dest} has no manifest "
                f"(s3://{bucket}/{key}), so knot cannot tell its files from those of earlier "
                "runs. The job's image predates manifests or the job did not finish its "
                "uploads; run the workflow again."
            ) from exc


class _KnownSize(BaseSubscriber):
    """Tells s3transfer an object's size, which it would otherwise ask S3 for again."""

    def __init__(self, size: int) -> None:
        self.size = size

    def on_queued(self, future, **kwargs) -> None:
        future.meta.provide_transfer_size(self.size)


WORKFLOW_ID_FILE = Path(".snakemake", "knot", "workflow-id")
_HEX = frozenset("0123456789abcdef")


def workflow_id(workdir: Path) -> str:
    """This working directory's random id, made on first use and kept in
    .snakemake/knot/workflow-id with the folder's real path. A hash of the path would be
    the same for two machines (or two users) with the same path, and they would share
    their copies in S3; an id alone would be shared by a copy of the folder (``cp -r``),
    and the two would overwrite each other's. So a file naming another real path gets a
    new id; a file of an older knot, an id without a path, keeps its id and gets the path."""
    real = os.path.realpath(workdir)
    path = workdir / WORKFLOW_ID_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        text = ""
    known, bound_to = _read_workflow_id(text)
    if known and bound_to == real:
        return known
    made = known if known and bound_to is None else uuid.uuid4().hex
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"id": made, "path": real}) + "\n", encoding="utf-8")
    return made


def _read_workflow_id(text: str) -> tuple[str | None, str | None]:
    """(id, real path) of a workflow-id file; the path is None in an older knot's file (the
    id alone), and both are None when the file is missing or damaged."""
    if _is_workflow_id(text.strip()):
        return text.strip(), None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        return None, None
    found = data.get("id")
    return (found, data["path"]) if _is_workflow_id(found) else (None, None)


def _is_workflow_id(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and len(text) == 32 and set(text) <= _HEX


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


def object_identity(head: dict) -> str:
    """What identifies an object in knot's bucket: the SHA-256 its uploader recorded (a
    file of WHOLE_CHECK_BYTES or more, see runtime/digest.py), else its ETag. The ETag of
    equal bytes differs between a single PUT and parts, and host and runtime upload a
    large file differently; only knot writes this bucket, so the record can be trusted."""
    recorded = digest.recorded(head.get("Metadata"))
    return f"sha256:{recorded}" if recorded else f"etag:{head.get('ETag', '')}"


def _is_missing(exc: ClientError) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound")


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key
