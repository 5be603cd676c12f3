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

A job whose inputs, params or code changed has another spec hash, so it is not adopted; the
earlier job, which makes the same files (the same ``produces`` hash: rule, outputs, logs and
benchmark), is terminated before the new one is submitted, lest its late upload land over
the new job's. At start-up, an earlier job still active in Batch whose files no job of this
run makes is terminated too (``sweep``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.status import FAILED, describe_jobs, split_child, terminate_job
from ..aws.tags import RULE_TAG, SPEC_TAG
from ..errors import aws_error
from ..jobs.group import job_label, jobs_of
from ..jobs.spec import UriFor, encode, file_item
from ..runtime.contract import GROUP_KIND
from ..runtime.spec import split_record
from .journal import JOURNAL, RUNS, Entry, append_journal, compact_journal, read_journal, run_alive

if TYPE_CHECKING:
    from ..jobs.group import AnyJob

log = logging.getLogger("knot")

SCAN_WINDOW_S = 2 * 24 * 3600  # without a journal, look at the queue's last two days
MAX_SPECS_BYTES = 64 * 1024 * 1024  # an array's spec object read back to hash its children
ACTIVE = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"})


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


def produces_hash(rule: str, uris: Iterable[str]) -> str:
    """What a job makes: its rule and the URIs of its outputs, logs and benchmark. Two
    jobs with this hash equal write the same objects, whatever their inputs."""
    content = json.dumps([rule, sorted(set(uris))])
    return hashlib.sha256(content.encode()).hexdigest()


def spec_produces(spec: dict) -> str:
    """The ``produces_hash`` of a spec (a group's: all its members' files)."""
    docs = spec["members"] if spec.get("kind") == GROUP_KIND else [spec]
    uris = [i["uri"] for d in docs for section in ("output", "log") for i in d[section]["items"]]
    uris += [d["benchmark"]["uri"] for d in docs if d.get("benchmark")]
    return produces_hash(spec["rule"], uris)


def job_produces(job: AnyJob, uri_for: UriFor) -> str:
    """The ``produces_hash`` of a Snakemake job, from its paths alone (its spec may not be
    buildable yet: params can depend on inputs not made)."""
    files = [
        f
        for m in jobs_of(job)
        for f in (*m.output, *m.log, *([m.benchmark] if m.benchmark else []))
    ]
    return produces_hash(job_label(job), [file_item(f, uri_for)["uri"] for f in files])


@dataclass(frozen=True)
class Adopted:
    batch_id: str
    spec_uri: str
    index: int


class Adopter:
    """Finds, once per run, the jobs a previous run left behind: hands each to the first
    new job with the same rule, spec hash and image, and terminates those that would
    overwrite this run's files."""

    def __init__(
        self,
        batch_client,
        s3_client,
        queue: str,
        journal: Path = JOURNAL,
        say: Callable[[str], None] = log.info,
        runs: Path = RUNS,
    ) -> None:
        self.batch, self.s3, self.queue, self.journal = batch_client, s3_client, queue, journal
        self.runs = runs
        self.say = say
        self.candidates: dict[tuple[str, str, str], list[Adopted]] | None = None
        self.active: dict[str, list[Entry]] = {}  # produces -> earlier jobs Batch still runs
        self.terminated: set[str] = set()

    def adopt(self, rule: str, job_definition: str, hashes: Sequence[str]) -> dict[int, Adopted]:
        """Index in ``hashes`` -> the live job it adopts."""
        candidates = self._candidates()
        found = {}
        for index, spec in enumerate(hashes):
            key = (rule, job_definition, spec)
            waiting = [a for a in candidates.get(key, ()) if a.batch_id not in self.terminated]
            if waiting:
                found[index] = waiting[0]
                candidates[key].remove(waiting[0])
        return found

    def sweep(self, produced: set[str]) -> list[Entry]:
        """At start-up: terminate every earlier job still active whose files no job of
        this run makes (one line each); Snakemake has handed over the whole DAG. A job
        whose run still lives (another Snakemake here, other targets) is that run's."""
        self._candidates()
        gone = [
            e
            for p, entries in self.active.items()
            if p not in produced
            for e in entries
            if not (e.run and run_alive(e.run, self.runs))
        ]
        for entry in gone:
            self._terminate(entry, "no job of the new run makes its outputs")
            self.say(
                f"knot: rule {entry.rule}: terminated Batch job {entry.batch_id}, left running "
                "by an earlier run: no job of this run makes its outputs, and its late "
                "upload could overwrite them"
            )
        return gone

    def retire(self, produces: str, keep: str | None) -> list[Entry]:
        """Terminate the earlier jobs still active that make the same files as a job of
        this run (all but ``keep``, the one it adopted): they are superseded."""
        self._candidates()
        older = [e for e in self.active.pop(produces, []) if e.batch_id != keep]
        for entry in older:
            self._terminate(entry, "superseded by a job of a new run")
        return older

    def record(self, entries: Sequence[Entry | str]) -> None:
        if entries:
            append_journal(entries, self.journal)

    def compact(self) -> None:
        compact_journal(self.journal)

    def _terminate(self, entry: Entry, why: str) -> None:
        self.terminated.add(entry.batch_id)
        terminate_job(self.batch, entry.batch_id, f"knot: {why}")

    def _candidates(self) -> dict[tuple[str, str, str], list[Adopted]]:
        if self.candidates is None:
            entries, exists = read_journal(self.journal)
            if not exists:
                entries = self._scan()
            self.candidates = self._verified(entries)
        return self.candidates

    def _verified(self, entries: list[Entry]) -> dict:
        """Only entries whose job is alive or succeeded, whose parent carries the same
        knot:spec tag, rule and image: what Batch says wins over the journal. Those still
        active are kept by what they make, for ``sweep`` and ``retire``."""
        ids = {e.batch_id for e in entries} | {split_child(e.batch_id)[0] for e in entries}
        described = describe_jobs(self.batch, sorted(ids)) if ids else {}
        found: dict[tuple[str, str, str], list[Adopted]] = {}
        for e in entries:
            job = described.get(e.batch_id)
            parent = described.get(split_child(e.batch_id)[0])
            if job is None or parent is None or job["status"] == FAILED:
                continue
            if not _described_by(e, parent):
                continue
            if job["status"] in ACTIVE and e.produces:
                self.active.setdefault(e.produces, []).append(e)
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


def _described_by(entry: Entry, parent: dict) -> bool:
    """Whether a journal entry describes this Batch job: the same knot:spec tag, rule and
    job definition (one per image)."""
    tags = parent.get("tags") or {}
    # DescribeJobs names the image on AWS (moto leaves it out); the job definition
    # is one per image either way.
    image = (parent.get("container") or {}).get("image") or entry.image
    return (
        tags.get(SPEC_TAG) == entry.submission
        and tags.get(RULE_TAG) == entry.rule
        and parent.get("jobDefinition") == entry.job_definition
        and image == entry.image
    )


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
