"""The per-job spec document (see docs/internals.md, "The job spec"): built from a
Snakemake job without touching AWS, then written to S3 before the job is submitted."""

from __future__ import annotations

import io
import json
import os
import posixpath
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from snakemake.io import get_flag_value, is_flagged
from snakemake.shell import shell as SnakemakeShell

from ..errors import aws_error
from ..rules.wrapper import wrapper_script_path
from ..runtime.contract import MANIFEST_IF_PRESENT, RULE_DIR, SPEC_VERSION
from ..runtime.integrity import merkle_tree
from .command import job_command
from .preamble import script_section
from .sourcepaths import job_params, original_path
from .values import encode_value, required_modules

if TYPE_CHECKING:
    from snakemake.jobs import Job

# Maps a local path Snakemake uses to the S3 URI it travels through (local mode only;
# storage-mode files carry their own URI).
UriFor = Callable[[str], str]


def build_spec(
    job: Job,
    kind: str,
    uri_for: UriFor,
    config_ref: dict | None = None,
    rule_dir: str = RULE_DIR,
) -> dict:
    """The spec document of one Snakemake job. ``kind`` is run, shell or script.
    ``config_ref`` points at the run's config object (``config.py``); None for an empty
    config, and for a group's member (the group's document carries it once). ``rule_dir``
    is where the image holds the rule's files (a group's member has its own)."""
    rule = job.rule
    directories = directory_inputs(job)
    spec = {
        "version": SPEC_VERSION,
        "rule": rule.name,
        "kind": kind,
        "jobid": job.jobid,
        "input": file_list(job.input, uri_for, directories),
        "output": ensured(file_list(job.output, uri_for), job),
        "log": file_list(job.log, uri_for),
        "benchmark": _benchmark(job.benchmark, uri_for, getattr(job, "benchmark_repeats", 1)),
        "params": value_list(job_params(job.params, Path.cwd(), rule.workflow), rule.name, "param"),
        "wildcards": value_list(job.wildcards, rule.name, "wildcard"),
        "resources": resource_list(job.resources, rule.name),
        "threads": job.threads,
    }
    if config_ref:
        spec["config_ref"] = config_ref
    if kind == "shell":
        spec["shell"] = {"command": job_command(job), "executable": "bash"}
    wrap = shell_wrap()
    if wrap:
        spec["shell_wrap"] = wrap
    if kind == "script":
        if getattr(rule, "wrapper", None) is not None:  # a wrapper's script is Python
            spec["script"] = {"path": wrapper_script_path(rule)}
        else:
            spec["script"] = script_section(job, spec_path, rule_dir)
    return spec


def shell_wrap() -> dict:
    """The Snakefile's ``shell.prefix()`` and ``shell.suffix()``, for every shell command
    of the job (a shell rule's and shell() in a run block); {} when it set neither. A
    prefix replaces bash's strict mode, as on the host."""
    wrap = {}
    if SnakemakeShell._process_prefix is not None:
        wrap["prefix"] = SnakemakeShell._process_prefix
    if SnakemakeShell._process_suffix:
        wrap["suffix"] = SnakemakeShell._process_suffix
    return wrap


def directory_inputs(job: Job) -> set[str]:
    """Inputs that are folders. What is on this machine says so first (local mode's
    files, and a checkpoint's outputs, which come home in storage mode too). Otherwise
    Snakemake flags ``directory()`` on the producing rule's output only, so look there.
    The producer alone can be wrong: for a file inside a checkpoint's ``directory("d/{s}")``,
    Snakemake's DAG names as its producer that rule with ``s`` spanning the rest of the
    path (``d/s1/3/x.txt`` with ``s=s1/3/x.txt``), a job that never runs."""
    names = {str(f) for f in job.input}
    here = {name for name in names if os.path.lexists(name)}
    found = {name for name in here if os.path.isdir(name)}
    dag = getattr(job, "dag", None)
    producers = dag.dependencies.get(job, {}) if dag is not None else {}
    for producer in producers:
        flagged = {str(f) for f in producer.output if getattr(f, "is_directory", False)}
        found.update((flagged & names) - here)
    return found


def spec_path(path: str) -> str:
    """The name a job gets for a host path. One inside the working directory goes relative
    to it, as an absolute name there means nothing in the container. One outside it (an
    input: pathcheck refuses outputs there) goes by its absolute name, which the runtime
    maps under EXTERNAL_DIR."""
    full = os.path.abspath(path)
    relative = os.path.relpath(full, os.getcwd())
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return full
    return relative if os.path.isabs(path) else path


def file_item(f, uri_for: UriFor, directories: AbstractSet[str] = frozenset()) -> dict:
    # A file of workflow.source_path() travels from where it is, not from Snakemake's cache.
    path = spec_path(original_path(f) or str(f))
    directory = bool(getattr(f, "is_directory", False)) or str(f) in directories
    storage = bool(getattr(f, "is_storage", False))
    uri = storage_uri(f.storage_object.query) if storage else uri_for(path)
    if directory and not uri.endswith("/"):
        uri += "/"
    if not directory:
        item = {"path": path, "uri": uri, "directory": False}
        # Only when flagged, so other specs keep their hash; the runtime touches it.
        return {**item, "touch": True} if is_flagged(f, "touch") else item
    # A directory is what its manifest lists; in the user's storage, one knot did not write
    # has none and is every file under its prefix (runtime/contract.py).
    manifest = MANIFEST_IF_PRESENT if storage else True
    return {"path": path, "uri": uri, "directory": True, "manifest": manifest}


def storage_uri(query: str) -> str:
    """The object a storage query names. snakemake-storage-plugin-s3 normalises the key
    (``posixpath.normpath`` without the leading '/'), so an absolute path under the
    default storage prefix, ``s3://b/p//abs/x``, is the object ``s3://b/p/abs/x``."""
    if not query.startswith("s3://"):
        return query
    bucket, _, key = query[len("s3://") :].partition("/")
    key = key.lstrip("/")
    return f"s3://{bucket}/{posixpath.normpath(key)}" if key else query


CHECKSUMS = ("sha256", "md5", "sha1")  # what Snakemake's ensure() takes


def ensured(outputs: dict, job: Job) -> dict:
    """The outputs with what ``ensure()`` asks of each: Snakemake checks it after a job it
    runs itself, and knot's job has no Snakemake, so the job checks it (runtime/job.py).
    A checksum given as a function of the wildcards is evaluated here, per job."""
    flags = {str(f): get_flag_value(f, "ensure") for f in job.output if is_flagged(f, "ensure")}
    for item, f in zip(outputs["items"], job.output, strict=True):
        ensure = flags.get(str(f))
        if not ensure:
            continue
        if ensure.get("non_empty"):
            item["non_empty"] = True
        algorithm, checksum = ensure.get("checksum_algorithm"), ensure.get("checksum")
        if algorithm in CHECKSUMS and checksum is not None:
            if callable(checksum):
                checksum = checksum(job.wildcards)
            item["checksum"] = f"{algorithm}:{str(checksum).strip().lower()}"
    return outputs


def file_list(files, uri_for: UriFor, directories: AbstractSet[str] = frozenset()) -> dict:
    items = [file_item(f, uri_for, directories) for f in files]
    return {"items": items, "names": _names(files)}


def value_list(values, rule: str, what: str) -> dict:
    items = [
        encode_value(v, rule=rule, what=f"{what} {_name_of(values, i)}")
        for i, v in enumerate(values)
    ]
    return {"items": items, "names": _names(values)}


def value_modules(
    job: Job, config: dict, resources: Mapping[str, object] | None = None
) -> set[str]:
    """The modules the job's params, resources and config need in the image to load (see
    values.required_modules). Raises RuleError for a value that cannot be sent at all.
    ``resources``: those known while planning (compute/resources.py, planned_resources);
    the job's own otherwise."""
    rule = job.rule.name
    try:
        params = job.params
        if resources is None:
            resources = dict(job.resources.items())
    except (FileNotFoundError, OSError):  # computed from inputs not made yet: checked later
        return set()
    encoded = [
        value_list(params, rule, "param")["items"],
        resource_list(resources, rule)["items"],
        encode_value(config, rule=rule, what="config"),
    ]
    return required_modules(encoded)


def _names(namedlist) -> dict:
    names = getattr(namedlist, "_names", {}) or {}
    return {name: [start, end] for name, (start, end) in names.items()}


def _name_of(namedlist, index: int) -> str:
    for name, (start, end) in _names(namedlist).items():
        if start == index or (end is not None and start <= index < end):
            return f"'{name}'"
    return f"#{index}"


def _benchmark(benchmark, uri_for: UriFor, repeats: int | None = 1) -> dict | None:
    """The benchmark file; ``repeat`` only with ``repeat(path, n)`` (n > 1), so specs
    without one keep their hash."""
    if not benchmark:
        return None
    item = file_item(benchmark, uri_for)
    found = {"path": item["path"], "uri": item["uri"]}
    return {**found, "repeat": repeats} if repeats and repeats > 1 else found


def resource_list(resources, rule: str) -> dict:
    """Snakemake's ``tmpdir`` resource is a host path and means nothing in the container,
    so it stays behind, as do unevaluated callables."""
    items: list[object] = []
    names: dict[str, list[int | None]] = {}
    for name, value in resources.items():
        if name == "tmpdir" or callable(value):
            continue
        names[name] = [len(items), None]
        items.append(encode_value(value, rule=rule, what=f"resource '{name}'"))
    return {"items": items, "names": names}


def encode(spec: dict) -> bytes:
    # Key order is data: input.keys() and iteration over config follow it, as in Snakemake.
    return json.dumps(spec, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SpecObject:
    """The specs of one submission as one S3 object (see ``spec_records``)."""

    body: bytes
    record_bytes: int  # the width of every record
    digest: str  # the Merkle root of the records (runtime/integrity.py), for SubmitJob


def spec_records(specs: Iterable[dict]) -> SpecObject:
    """All specs of one submission as one object of equal-width records.

    Record ``i`` is bytes ``[i * width, (i + 1) * width)``: the Merkle proof of document
    ``i``, a newline, the document, spaces, and a newline. An array child reads only its
    own record with a ranged GET and checks it against the root that SubmitJob carries;
    the executor writes one object per SubmitJob instead of one per job. The jobs of one
    submission share a rule, so their documents differ only in paths and wildcard values,
    and the padding stays small."""
    docs = [encode(spec) for spec in specs]
    root, proofs = merkle_tree(docs)
    heads = [
        ",".join(proof).encode() + b"\n" + doc for proof, doc in zip(proofs, docs, strict=True)
    ]
    width = max(map(len, heads), default=0) + 1
    body = b"".join(head.ljust(width - 1) + b"\n" for head in heads)
    return SpecObject(body, width, root)


# A large spec object goes in parts, sent in parallel and retried part by part; one PUT
# takes at most 5 GiB. The records' Merkle root, which SubmitJob carries and each job
# checks, is computed from the bytes before they are sent, whichever way they go.
SPEC_TRANSFER = TransferConfig(
    multipart_threshold=64 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024, max_concurrency=8
)


def upload_specs(
    s3,
    bucket: str,
    key: str,
    specs: Iterable[dict],
    rule: str,
    transfer: TransferConfig = SPEC_TRANSFER,
) -> SpecObject:
    """Write the specs of one submission to ``key`` as records: one PUT, or a multipart
    upload from ``transfer``'s threshold on."""
    written = spec_records(specs)
    try:
        s3.upload_fileobj(
            io.BytesIO(written.body),
            bucket,
            key,
            ExtraArgs={"ContentType": "text/plain"},
            Config=transfer,
        )
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        raise aws_error(exc, "writing job specs to S3", rule=rule, service="s3") from exc
    return written
