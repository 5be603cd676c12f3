"""The tags of a Batch job: the user's, knot's own, and AWS Batch's limits (50 tags a
resource, keys of 128 and values of 256 characters, a safe character set)."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.aws.tags import (
    KNOT_TAGS,
    MAX_TAGS,
    MAX_USER_TAGS,
    job_tags,
    tag_value,
)
from snakemake_executor_knot.config.settings import parse_tags
from snakemake_executor_knot.errors import ConfigError


def _tags(user: dict[str, str], wildcards: str = "") -> dict[str, str]:
    return job_tags(
        user,
        stack="knot",
        spec="ab12",
        run="20261206T113000-ab12cd34",
        workflow="w/x",
        rule="fit",
        wildcards=wildcards,
    )


def test_the_wildcards_tag_is_made_safe_and_left_out_when_there_are_none():
    assert _tags({}, "subject=sub-01 path=a;b")["knot:wildcards"] == "subject=sub-01 path=a_b"
    assert "knot:wildcards" not in _tags({})


def test_a_job_carries_the_cost_tags_next_to_the_users():
    assert _tags({"team": "neuro"}) == {
        "team": "neuro",
        "knot:stack": "knot",
        "knot:spec": "ab12",
        "knot:run": "20261206T113000-ab12cd34",
        "knot:workflow": "w/x",
        "knot:rule": "fit",
    }


def test_the_most_user_tags_fit_next_to_knots_own_within_batchs_fifty():
    user = dict(parse_tags(",".join(f"k{i}=v{i}" for i in range(MAX_USER_TAGS))))
    tags = _tags(user, "subject=sub-01")
    assert len(tags) <= MAX_TAGS
    # The job definition carries the platform tag instead of spec, run, workflow, rule and
    # wildcards.
    assert len(user) + len(KNOT_TAGS) == MAX_TAGS


def test_one_more_user_tag_is_refused_before_anything_is_made():
    with pytest.raises(ConfigError, match="give at most 43"):
        parse_tags(",".join(f"k{i}=v" for i in range(MAX_USER_TAGS + 1)))


def test_too_many_tags_on_one_job_fail_loudly():
    with pytest.raises(ValueError, match="AWS Batch allows 50"):
        _tags({f"k{i}": "v" for i in range(MAX_TAGS)})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my project/ab12", "my project/ab12"),
        ("données#1", "donn_es_1"),
        ("a" * 300, "a" * 256),
        ("x+y=z:@.-_", "x+y=z:@.-_"),
    ],
)
def test_tag_values_keep_to_the_characters_every_service_accepts(text, expected):
    assert tag_value(text) == expected


def test_a_long_key_or_value_from_the_user_is_refused():
    with pytest.raises(ConfigError, match="128"):
        parse_tags("k" * 129 + "=v")
    with pytest.raises(ConfigError, match="256"):
        parse_tags("k=" + "v" * 257)
