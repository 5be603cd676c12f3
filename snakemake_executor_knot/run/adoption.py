"""Adoption after the Snakemake process died: a job Batch still runs, or finished
successfully, is adopted by the next run instead of being submitted and paid for again.

A job is adopted only when its rule, its spec CONTENT and its image equal the new job's. The
content hash leaves out what differs between runs of the same work (the Snakemake jobid; the
run id is only in the spec's S3 key, never in the document). Every submission is tagged
``knot:spec`` with the hash of its jobs' hashes, and each job gets one line in the journal
(``journal.py``). The journal is a hint: every candidate is checked
against Batch (status, tag, image) before adoption, so a damaged journal can cost an adoption
but never cause a wrong one. Without a journal, the queue's recent jobs and their tags are the
source.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.status import FAILED, describe_jobs, split_child
from ..aws.submit import RULE_TAG
from ..errors import aws_error
from ..jobs.spec import encode
from ..runtime.spec import split_record
from .journal import JOURNAL, Entry, append_journal, read_journal

SPEC_TAG = "knot:spec"
SCAN_WINDOW_S = 2 * 24 * 3600  # without a journal, look at the queue's last two days
MAX_SPECS_BYTES = 64 * 1024 * 1024  # an array's spec object read back to hash its children


def spec_hash(spec: dict) -> str:
    """The hash of a job spec's content as the job reads it (its JSON), without the per-run
    Snakemake jobid."""
    return document_hash(json.loads(encode(spec)))


def document_hash(document: dict) -> str:
    content = {k: v for k, v in document.items() if k != "jobid"}
    if isinstance(content.get("members"), list):  # a group's members carry jobids too
        content["members"] = [
            {k: v for k, v in m.items() if k != "jobid"} if isinstance(m, dict) else m
            for m in content["members"]
        ]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def submission_hash(hashes: Sequence[str]) -> str:
    """The ``knot:spec`` tag of one SubmitJob: a single job's own hash, so that it can be
    matched from its tag alone; for an array, the hash of its jobs' hashes in order."""
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


@dataclass(frozen=True)
class Adopted:
    batch_id: str
    spec_uri: str
    index: int


class Adopter:
    """Finds, once per run, the jobs a previous run left behind, and hands each to the first
    new job with the same rule, spec hash and image."""

    def __init__(self, batch_client, s3_client, queue: str, journal: Path = JOURNAL) -> None:
        self.batch, self.s3, self.queue, self.journal = batch_client, s3_client, queue, journal
        self.candidates: dict[tuple[str, str, str], list[Adopted]] | None = None

    def adopt(self, rule: str, job_definition: str, hashes: Sequence[str]) -> dict[int, Adopted]:
        """Index in ``hashes`` -> the live job it adopts."""
        if self.candidates is None:
            self.candidates = self._find()
        found = {}
        for index, spec in enumerate(hashes):
            waiting = self.candidates.get((rule, job_definition, spec))
            if waiting:
                found[index] = waiting.pop(0)
        return found

    def record(self, entries: Sequence[Entry | str]) -> None:
        if entries:
            append_journal(entries, self.journal)

    def _find(self) -> dict[tuple[str, str, str], list[Adopted]]:
        entries, exists = read_journal(self.journal)
        if not exists:
            entries = self._scan()
        return self._verified(entries)

    def _verified(self, entries: list[Entry]) -> dict:
        """Only entries whose job is alive or succeeded, whose parent carries the same
        knot:spec tag, rule and image: what Batch says wins over the journal."""
        ids = {e.batch_id for e in entries} | {split_child(e.batch_id)[0] for e in entries}
        described = describe_jobs(self.batch, sorted(ids)) if ids else {}
        found: dict[tuple[str, str, str], list[Adopted]] = {}
        for e in entries:
            job = described.get(e.batch_id)
            parent = described.get(split_child(e.batch_id)[0])
            if job is None or parent is None or job["status"] == FAILED:
                continue
            tags = parent.get("tags") or {}
            # DescribeJobs names the image on AWS (moto leaves it out); the job definition
            # is one per image either way.
            image = (parent.get("container") or {}).get("image") or e.image
            same = (
                tags.get(SPEC_TAG) == e.submission
                and tags.get(RULE_TAG) == e.rule
                and parent.get("jobDefinition") == e.job_definition
                and image == e.image
            )
            if not same:
                continue
            key = (e.rule, e.job_definition, e.spec)
            found.setdefault(key, []).append(Adopted(e.batch_id, e.spec_uri, e.index))
        return found

    def _scan(self) -> list[Entry]:
        """Journal lost: the queue's recent jobs with a knot:spec tag. A single job's tag is
        its hash; an array's children are hashed from its spec object (one GET per array),
        which must hash to the tag."""
        since_ms = int((time.time() - SCAN_WINDOW_S) * 1000)
        try:
            pages = self.batch.get_paginator("list_jobs").paginate(
                jobQueue=self.queue,
                filters=[{"name": "AFTER_CREATED_AT", "values": [str(since_ms)]}],
            )
            ids = [s["jobId"] for p in pages for s in p["jobSummaryList"]]
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(exc, f"listing jobs in queue {self.queue}", service="batch") from exc
        parents = [i for i in ids if split_child(i)[1] is None]
        described = describe_jobs(self.batch, parents).values()
        return [e for job in described for e in _tagged(job, self._array_hashes)]

    def _array_hashes(self, spec_uri: str, width: str, size: int) -> list[str] | None:
        """The hashes of an array's spec records, or None when the object is unreadable."""
        if not spec_uri.startswith("s3://") or not width.isdigit() or int(width) < 1:
            return None
        bucket, _, key = spec_uri[len("s3://") :].partition("/")
        length = int(width) * size
        if length > MAX_SPECS_BYTES:
            return None
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{length - 1}")
            data = body["Body"].read()
            records = [data[i : i + int(width)] for i in range(0, length, int(width))]
            return [document_hash(json.loads(split_record(r)[1])) for r in records]
        except (BotoCoreError, ClientError, ValueError, AttributeError, RecursionError):
            return None


def _tagged(job: dict, array_hashes) -> list[Entry]:
    """Entries of one tagged job (an array: one per child) from its tags and spec object."""
    tags = job.get("tags") or {}
    tag, rule = tags.get(SPEC_TAG), tags.get(RULE_TAG)
    container = job.get("container") or {}
    env = {e.get("name"): e.get("value") for e in container.get("environment") or []}
    uri = env.get("KNOT_SPEC_URI") or ""
    size = (job.get("arrayProperties") or {}).get("size")
    if not tag or not rule:
        return []
    hashes = [tag]
    if size:
        hashes = array_hashes(uri, env.get("KNOT_SPEC_RECORD_BYTES") or "", size)
        if not hashes or submission_hash(hashes) != tag:
            return []  # not the specs the job was submitted with: adopt none of it
    return [
        Entry(
            spec=spec,
            submission=tag,
            batch_id=f"{job['jobId']}:{index}" if size else job["jobId"],
            image=container.get("image") or "",
            job_definition=job.get("jobDefinition") or "",
            rule=rule,
            jobid=-1,
            spec_uri=uri,
            index=index,
        )
        for index, spec in enumerate(hashes)
    ]
