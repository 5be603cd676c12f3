"""The in-container runtime: fetch a job spec, stage inputs, run the rule, upload outputs.

Copied into every image as the top-level package ``knot_runtime`` and started with
``python -m knot_runtime``. It imports only the standard library and boto3/botocore/
s3transfer (Snakemake is not installed in the image), and uses relative imports so it works
both as ``snakemake_executor_knot.runtime`` and as ``knot_runtime``.
"""
