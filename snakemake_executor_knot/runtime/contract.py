"""What the host and the job's container must agree on, in one place.

The host (``jobspec``, ``image``, ``aws``, ``rules``) imports these names from here, and the
runtime reads them from here inside the image, so the two halves cannot drift apart. Like the
rest of the runtime, this module imports nothing outside the standard library.
"""

from __future__ import annotations

from typing import Literal, TypedDict

# The job spec document's format (docs/internals.md, "The job spec"). Version 3: the
# config is an object of its own, which the spec references (config_ref).
SPEC_VERSION = 3
# Environment of every job, set in SubmitJob's containerOverrides.
SPEC_URI_ENV = "KNOT_SPEC_URI"  # s3://bucket/key of the submission's spec object
SPEC_RECORD_ENV = "KNOT_SPEC_RECORD_BYTES"  # width of one spec record in that object
SPEC_DIGEST_ENV = "KNOT_SPEC_SHA256"  # Merkle root of that object's records (integrity.py)
# Set by AWS Batch for array children (moto sets only AWS_BATCH_JOB_ID, '<id>:<index>').
ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
JOB_ID_ENV = "AWS_BATCH_JOB_ID"
# An array child submitted again alone (on demand after spot reclaims, run/spot.py): the
# record it reads. Batch reserves AWS_BATCH_* names, so knot cannot set the one above.
SPEC_INDEX_ENV = "KNOT_SPEC_INDEX"
# Inputs the host names by an absolute path lie outside its working directory (reference
# data): the job stages each at EXTERNAL_DIR/<that path without its leading '/'>, read only,
# inside its own working directory, and the rule's code sees that relative path.
EXTERNAL_DIR = ".knot-external"
WORKDIR = "/work"  # the job's working directory in the image

# The layout of a rule's image (docs/internals.md, "The image").
KNOT_ROOT = "/opt/knot"
VENV = f"{KNOT_ROOT}/venv"
LIB = f"{KNOT_ROOT}/lib"  # on PYTHONPATH: the runtime package and the rule module
RULE_DIR = f"{KNOT_ROOT}/rule"  # a script rule's script, at its path as written in the rule
# The folders of RULE_DIR to put on sys.path, one a line relative to RULE_DIR, when the rule
# imports the workflow's own modules (Snakemake puts each Snakefile's folder on sys.path).
SYS_PATH_FILE = ".knot-sys-path"
# A group's image holds each member rule's files as a single rule's image would, but under
# MEMBERS_DIR/<rule>/ (its rule module in .../lib, its files in .../rule).
MEMBERS_DIR = f"{KNOT_ROOT}/members"
# A rule's conda environment (conda: with --software-deployment-method conda) lies at
# CONDA_ROOT/<key>; the image names it in CONDA_PREFIX_ENV, and shell and script rules run
# inside it, as Snakemake activates it. Run blocks keep knot's Python.
CONDA_ROOT = f"{KNOT_ROOT}/conda"
CONDA_PREFIX_ENV = "KNOT_CONDA_PREFIX"
MEMBERS_DIR_ENV = "KNOT_MEMBERS_DIR"  # overrides MEMBERS_DIR, for running outside an image
GROUP_KIND = "group"  # the spec kind of a group job (its members are run, shell or script)
# The spec kind of a rule with no action (no run:, shell:, script: ...). Snakemake runs such a
# rule on the host, unless it is in a group: then, as a member, it runs nothing and only its
# touch() outputs are made.
NORUN_KIND = "norun"
RULE_DIR_ENV = "KNOT_RULE_DIR"  # overrides RULE_DIR, for running the runtime outside an image
RUNTIME_PACKAGE = "knot_runtime"  # this package's name inside the image
RULE_MODULE = "knot_rule"  # the generated module of run: rules
RULE_MODULE_PATH = f"{LIB}/{RULE_MODULE}.py"
RUNTIME_COMMAND = (f"{VENV}/bin/python", "-m", RUNTIME_PACKAGE)
# The user every job runs as; the instances block its traffic to the metadata service.
KNOT_UID = 1000

# The generated ``knot_run(...)`` function of a run: rule and its arguments, in order.
# ``config`` is not one of them: it is a module global, so a config change needs no new image.
RUN_FUNCTION = "knot_run"
RUN_ARGUMENTS = (
    "input",
    "output",
    "params",
    "wildcards",
    "threads",
    "resources",
    "log",
    "rule",
    "jobid",
)

# A directory() that knot wrote is exactly the files its manifest lists: the job role
# cannot delete, so files of earlier runs, or of an earlier attempt of the same job, stay
# under the prefix. The manifest is the object ``<prefix without its final '/'>`` + this
# suffix, next to the prefix rather than under it, so that nothing listing the prefix (the
# S3 storage plugin lists ``<prefix>/``) sees it as a file of the directory. In knot's own
# bucket (local mode) the spec item says ``"manifest": true``: every directory there has
# one. In the user's storage it says MANIFEST_IF_PRESENT: a job still writes one for each
# directory output, but a directory input knot did not write has none and is read whole.
MANIFEST_SUFFIX = ".knot-manifest.json"
MANIFEST_VERSION = 1
MANIFEST_IF_PRESENT = "if-present"
# The most of a manifest any reader takes in (about 400,000 files of a directory): a
# manifest is read from S3, so its size is not the writer's to choose for the reader.
MANIFEST_MAX_BYTES = 64 * 1024 * 1024


# botocore >= 1.36 checks a GET's body against the object's stored checksum whenever S3
# returns one (whole-object reads; ranged part reads carry none), and sends a checksum with
# every upload. Said explicitly on every S3 client, host and job, so that a user's AWS
# config (response_checksum_validation = when_required) cannot turn it off.
class Checksums(TypedDict):
    """botocore Config's checksum options, so that ``Config(**CHECKSUMS)`` type-checks."""

    response_checksum_validation: Literal["when_supported", "when_required"]
    request_checksum_calculation: Literal["when_supported", "when_required"]


CHECKSUMS: Checksums = {
    "response_checksum_validation": "when_supported",
    "request_checksum_calculation": "when_supported",
}
# Files of at least this size may travel in parts (the runtime's s3transfer default
# threshold, 8 MiB; the host's is higher), which those checksums do not cover: their
# objects carry the file's SHA-256 in this metadata key, and downloads check it (digest.py).
WHOLE_CHECK_BYTES = 8 * 1024 * 1024
DIGEST_METADATA = "knot-sha256"
# Object metadata of an output the rule made as a symbolic link: the link's target,
# percent-encoded (runtime/links.py); the object itself holds the bytes it leads to.
LINK_METADATA = "knot-link"

# Job specs live under SPEC_FOLDER of knot's bucket (knot/specs/<run>/...). Jobs may read
# them but not write them (the job role's policy), so each job's usage document goes to the
# same path with USAGE_FOLDER in its place: knot/usage/<run>/<spec name>/<array index>.json.
SPEC_FOLDER = "specs"
USAGE_FOLDER = "usage"
USAGE_VERSION = 1


def usage_key(spec_key: str, index: int | str) -> str:
    """The S3 key of one job's usage document (array index 0 for a single job)."""
    parts = spec_key.split("/")
    if SPEC_FOLDER in parts[:-1]:
        parts[parts.index(SPEC_FOLDER)] = USAGE_FOLDER
    return "/".join([*parts, f"{index}.json"])
