"""knot: run each Snakemake rule invocation as an AWS Batch job.

Kept free of imports so that the in-container runtime (``snakemake_executor_knot.runtime``)
can be shipped and imported without Snakemake.
"""

__version__ = "0.1.0"
