"""moto in server mode, in this process, counting every request by service and operation.

Counting happens on the server, so knot, the aws-batch plugin, the S3 storage plugin and
boto3 are measured the same way, whatever client-side counters they keep. The service is
the one the request's SigV4 signature names; the operation comes from the protocol:
X-Amz-Target (JSON services), the REST path (Batch), the method and query (S3), or the
Action form field (query services such as CloudFormation and STS).
"""

from __future__ import annotations

import collections
import io
import logging
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from functools import cache

import botocore.session
import requests
from werkzeug.serving import make_server

_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request")
# Query-protocol bodies are small forms; S3 bodies (up to a GiB here) are never read.
_FORM_SERVICES = {"cloudformation", "sts", "iam", "ec2"}


@dataclass(frozen=True)
class Request:
    time: float  # time.time() when the request arrived
    service: str
    operation: str


@dataclass
class Tally:
    """Every counted request, in arrival order."""

    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def mark(self) -> int:
        with self.lock:
            return len(self.requests)

    def since(self, mark: int) -> list[Request]:
        with self.lock:
            return self.requests[mark:]


def counts(requests: list[Request]) -> collections.Counter[str]:
    """``service.Operation`` -> number of requests."""
    return collections.Counter(f"{r.service}.{r.operation}" for r in requests)


@cache
def rest_operations(service: str) -> dict[tuple[str, str], str]:
    """(method, path) -> operation name for a REST service with fixed paths (Batch)."""
    model = botocore.session.get_session().get_service_model(service)
    ops = {}
    for name in model.operation_names:
        http = model.operation_model(name).http
        ops[(http["method"], http["requestUri"].split("?")[0])] = name
    return ops


def s3_operation(
    method: str, path: str, query: dict[str, list[str]], copy_source: bool = False
) -> str:
    """The S3 operation of a path-style request (the endpoint is 127.0.0.1);
    ``copy_source``: the request carries an x-amz-copy-source header."""
    has_key = "/" in path.strip("/")
    if "uploadId" in query:
        return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload"}.get(
            method, f"{method}Upload"
        )
    if "uploads" in query:
        return "CreateMultipartUpload"
    if not has_key:
        if method == "GET" and ("list-type" in query or "prefix" in query):
            return "ListObjects" + ("V2" if "list-type" in query else "")
        return {"HEAD": "HeadBucket", "PUT": "CreateBucket"}.get(method, f"{method}Bucket")
    named = {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}
    if method == "PUT" and copy_source:
        return "CopyObject"
    return named.get(method, {"DELETE": "DeleteObject", "POST": "PostObject"}.get(method, method))


def operation(environ: dict, service: str, body: bytes | None) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if service == "s3":
        return s3_operation(method, path, query, bool(environ.get("HTTP_X_AMZ_COPY_SOURCE")))
    if body is not None:
        action = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action")
        if action:
            return action[0]
    return rest_operations(service).get((method, path), f"{method} {path}")


class CountingApp:
    """WSGI middleware: record the request, then hand it to moto unchanged."""

    def __init__(self, app, tally: Tally) -> None:
        self.app = app
        self.tally = tally

    def __call__(self, environ, start_response):
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope:  # unsigned requests are moto's own API (/moto-api), not AWS calls
            service = scope.group(1)
            body = None
            if service in _FORM_SERVICES:
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                environ["wsgi.input"] = io.BytesIO(body)
            self.tally.add(Request(time.time(), service, operation(environ, service, body)))
        return self.app(environ, start_response)


class CountingMotoServer:
    """moto on 127.0.0.1 at a free port, Batch jobs completing without Docker."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        from snakemake_executor_knot.emulator.patches.s3 import (
            patch_ranged_reads,
            patch_sorted_listing,
        )

        # The emulator's S3: a ranged GET reads only its range (moto alone copies the
        # whole object per part, which at 1 GiB measures moto, not the client), and a
        # prefix listing visits only the keys under the prefix (moto alone scans the
        # bucket, which at 10,000 jobs measures moto).
        patch_ranged_reads()
        patch_sorted_listing()
        # One log line per request would swamp the output of a 10,000-job run.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.tally = Tally()
        app = CountingApp(DomainDispatcherApplication(create_backend_app), self.tally)
        self._server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler
        )
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CountingMotoServer:
        self._thread.start()
        # moto's own configuration endpoint: Batch's "simple" backend marks each job
        # SUCCEEDED at SubmitJob, without Docker.
        response = requests.post(
            f"{self.endpoint}/moto-api/config", json={"batch": {"use_docker": False}}, timeout=30
        )
        response.raise_for_status()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(timeout=30)
        self._server.server_close()
