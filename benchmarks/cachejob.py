"""One job's stage-in on a shared instance, in its own process as in a job container:
``python -m benchmarks.cachejob BUCKET KEY WORKDIR``. The instance's input cache is used
when KNOT_CACHE_DIR and KNOT_CACHE_BYTES are set (runtime/cache.py), as Batch sets them.
The job's copy is removed at the end, as its container's disk goes with it. Prints JSON:
stage-in seconds and what the cache did."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

from snakemake_executor_knot.runtime import cachestage, staging
from snakemake_executor_knot.runtime.spec import FileItem


def main(argv: list[str]) -> int:
    bucket, key, workdir = argv
    os.makedirs(workdir, exist_ok=True)
    item = FileItem(os.path.join(workdir, "input.bin"), f"s3://{bucket}/{key}")
    s3 = staging.make_s3_client()
    start = time.perf_counter()
    with staging.make_transfer_manager(s3) as manager:
        staging.download(manager, staging.plan_downloads(s3, [item]))
    seconds = time.perf_counter() - start
    size = os.path.getsize(item.path)
    shutil.rmtree(workdir)
    print(json.dumps({"seconds": seconds, "size": size, **cachestage.usage_fields()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
