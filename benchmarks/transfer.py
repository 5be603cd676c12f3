"""One timed transfer, in its own process as in a job container:
``python -m benchmarks.transfer {knot,boto3} {upload,download} BUCKET PREFIX FOLDER``.

``knot`` is the job runtime's staging (``runtime/staging.py``: one transfer manager, every
file at once); ``boto3`` is ``download_file``/``upload_file`` with their defaults, one file
after another. Endpoint and credentials come from the environment. Prints JSON seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time

import boto3

from snakemake_executor_knot.runtime import staging
from snakemake_executor_knot.runtime.spec import FileItem


def names(folder: str) -> list[str]:
    return sorted(os.listdir(folder))


def knot_transfer(direction: str, bucket: str, prefix: str, folder: str, keys: list[str]) -> None:
    items = [FileItem(os.path.join(folder, k), f"s3://{bucket}/{prefix}/{k}") for k in keys]
    s3 = staging.make_s3_client()
    with staging.make_transfer_manager(s3) as manager:
        if direction == "upload":
            staging.upload(manager, staging.plan_uploads(items))
        else:
            staging.download(manager, staging.plan_downloads(s3, items))


def boto3_transfer(direction: str, bucket: str, prefix: str, folder: str, keys: list[str]) -> None:
    s3 = boto3.client("s3")
    os.makedirs(folder, exist_ok=True)
    for key in keys:
        path = os.path.join(folder, key)
        if direction == "upload":
            s3.upload_file(path, bucket, f"{prefix}/{key}")
        else:
            s3.download_file(bucket, f"{prefix}/{key}", path)


def main(argv: list[str]) -> int:
    impl, direction, bucket, prefix, folder, *keys = argv
    if direction == "upload":
        keys = names(folder)
    transfer = knot_transfer if impl == "knot" else boto3_transfer
    start = time.perf_counter()
    transfer(direction, bucket, prefix, folder, keys)
    print(json.dumps({"seconds": time.perf_counter() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
