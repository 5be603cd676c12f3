"""The tags every Batch job carries (pure): the user's ``--knot-tags``, the stack's, the
spec hash adoption reads, and the cost tags ``knot:run``, ``knot:workflow`` and
``knot:rule`` that let Cost Explorer split a bill by run and by rule once they are
activated as cost-allocation tags.

Batch's limits (AWS Batch user guide, "Tag restrictions"): at most 50 tags a resource,
keys of at most 128 and values of at most 256 characters; letters, digits, spaces and
``+ - = . _ : / @`` are the characters every tagging service accepts, and ``aws:`` is
reserved. SubmitJob with ``propagateTags`` copies the job's tags to its ECS task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

STACK_TAG = "knot:stack"
SPEC_TAG = "knot:spec"
RULE_TAG = "knot:rule"
RUN_TAG = "knot:run"
WORKFLOW_TAG = "knot:workflow"
WILDCARDS_TAG = "knot:wildcards"  # the wildcards a submission's jobs share
PLATFORM_TAG = "knot:platform"  # on job definitions only
# The keys knot sets itself on a job or job definition; a user's tag may not take them.
KNOT_TAGS = (STACK_TAG, SPEC_TAG, RULE_TAG, RUN_TAG, WORKFLOW_TAG, WILDCARDS_TAG, PLATFORM_TAG)
MAX_TAGS = 50
MAX_KEY = 128
MAX_VALUE = 256
# The most --knot-tags a job leaves room for next to knot's own.
MAX_USER_TAGS = MAX_TAGS - len(KNOT_TAGS)
_UNSAFE = re.compile(r"[^\w .:/=+@-]", re.ASCII)


def tag_value(text: str) -> str:
    """``text`` as a tag value every service accepts: other characters become ``_``, and
    it is cut to 256 characters."""
    return _UNSAFE.sub("_", text)[:MAX_VALUE]


def job_tags(
    user: Mapping[str, str],
    *,
    stack: str,
    spec: str,
    run: str,
    workflow: str,
    rule: str,
    wildcards: str = "",
) -> dict[str, str]:
    """The tags of one SubmitJob: the user's first, knot's own over them. The rule and
    spec are kept as they are (adoption compares them); the others are made safe."""
    own = {RUN_TAG: tag_value(run), WORKFLOW_TAG: tag_value(workflow)}
    if wildcards:
        own[WILDCARDS_TAG] = tag_value(wildcards)
    tags = {**user, STACK_TAG: stack, SPEC_TAG: spec, RULE_TAG: rule, **own}
    if len(tags) > MAX_TAGS:  # parse_tags keeps --knot-tags below this
        raise ValueError(f"{len(tags)} tags on one job; AWS Batch allows {MAX_TAGS}")
    return tags
