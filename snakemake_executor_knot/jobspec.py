"""The per-job spec document (see docs/internals.md, "The job spec"): built from a
Snakemake job without touching AWS, then written to S3 before the job is submitted."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from .errors import RuleError, aws_error
from .runtime.contract import SPEC_VERSION

# Maps a local path Snakemake uses to the S3 URI it travels through (local mode only;
# storage-mode files carry their own URI).
UriFor = Callable[[str], str]


def build_spec(job, kind: str, uri_for: UriFor, config: dict) -> dict:
    """The spec document of one Snakemake job. ``kind`` is run, shell or script."""
    rule = job.rule
    directories = directory_inputs(job)
    spec = {
        "version": SPEC_VERSION,
        "rule": rule.name,
        "kind": kind,
        "jobid": job.jobid,
        "input": file_list(job.input, uri_for, directories),
        "output": file_list(job.output, uri_for),
        "log": file_list(job.log, uri_for),
        "benchmark": _benchmark(job.benchmark, uri_for),
        "params": value_list(job.params, rule.name, "param"),
        "wildcards": value_list(job.wildcards, rule.name, "wildcard"),
        "resources": resource_list(job.resources, rule.name),
        "threads": job.threads,
        "config": _json_checked(config, rule.name, "config"),
    }
    if kind == "shell":
        spec["shell"] = {"command": rule.shellcmd, "executable": "bash"}
    if kind == "script":
        spec["script"] = {"path": rule.script}
    return spec


def directory_inputs(job) -> set[str]:
    """Inputs that are folders. Snakemake flags ``directory()`` on the producing rule's
    output only, so look there; a folder that already exists locally counts too."""
    found = {str(f) for f in job.input if os.path.isdir(str(f))}
    dag = getattr(job, "dag", None)
    producers = dag.dependencies.get(job, {}) if dag is not None else {}
    for producer in producers:
        found.update(str(f) for f in producer.output if getattr(f, "is_directory", False))
    return found


def file_item(f, uri_for: UriFor, directories: set[str] = frozenset()) -> dict:
    path = str(f)
    directory = bool(getattr(f, "is_directory", False)) or path in directories
    storage = bool(getattr(f, "is_storage", False))
    uri = f.storage_object.query if storage else uri_for(path)
    if directory and not uri.endswith("/"):
        uri += "/"
    if not directory:
        return {"path": path, "uri": uri, "directory": False}
    # In knot's bucket a directory is what its manifest lists; a storage-mode directory is
    # its prefix, which Snakemake clears (with the user's rights) before the job runs.
    return {"path": path, "uri": uri, "directory": True, "manifest": not storage}


def file_list(files, uri_for: UriFor, directories: set[str] = frozenset()) -> dict:
    items = [file_item(f, uri_for, directories) for f in files]
    return {"items": items, "names": _names(files)}


def value_list(values, rule: str, what: str) -> dict:
    items = [_json_checked(v, rule, f"{what} {_name_of(values, i)}") for i, v in enumerate(values)]
    return {"items": items, "names": _names(values)}


def _names(namedlist) -> dict:
    names = getattr(namedlist, "_names", {}) or {}
    return {name: [start, end] for name, (start, end) in names.items()}


def _name_of(namedlist, index: int) -> str:
    for name, (start, end) in _names(namedlist).items():
        if start == index or (end is not None and start <= index < end):
            return f"'{name}'"
    return f"#{index}"


def _benchmark(benchmark, uri_for: UriFor) -> dict | None:
    if not benchmark:
        return None
    item = file_item(benchmark, uri_for)
    return {"path": item["path"], "uri": item["uri"]}


def resource_list(resources, rule: str) -> dict:
    """Snakemake's ``tmpdir`` resource is a host path and means nothing in the container,
    so it stays behind, as do unevaluated callables."""
    items, names = [], {}
    for name, value in resources.items():
        if name == "tmpdir" or callable(value):
            continue
        names[name] = [len(items), None]
        items.append(_json_checked(value, rule, f"resource '{name}'"))
    return {"items": items, "names": names}


def _json_checked(value, rule: str, what: str):
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise RuleError(
            f"Rule '{rule}': {what} cannot be sent to the job: {exc}. knot ships params, "
            "wildcards, resources and config as JSON; use strings, numbers, booleans, lists "
            "and dicts, or compute the value inside the run block."
        ) from exc
    return value


def encode(spec: dict) -> bytes:
    # Key order is data: input.keys() and iteration over config follow it, as in Snakemake.
    return json.dumps(spec, separators=(",", ":")).encode()


def spec_records(specs: Iterable[dict]) -> tuple[bytes, int]:
    """All specs of one submission as one object of equal-width records, and the width.

    Record ``i`` is bytes ``[i * width, (i + 1) * width)``: the document, padded with
    spaces, then a newline (so the object is also JSON Lines). An array child reads only
    its own record with a ranged GET, and the executor writes one object per SubmitJob
    instead of one per job. The jobs of one submission share a rule, so their documents
    differ only in paths and wildcard values, and the padding stays small."""
    docs = [encode(spec) for spec in specs]
    width = max(map(len, docs), default=0) + 1
    return b"".join(doc.ljust(width - 1) + b"\n" for doc in docs), width


def upload_specs(s3, bucket: str, key: str, specs: Iterable[dict], rule: str) -> int:
    """Write the specs of one submission to ``key`` as records; returns the record width."""
    body, width = spec_records(specs)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/jsonl")
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "writing job specs to S3", rule=rule, service="s3") from exc
    return width
