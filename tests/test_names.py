"""Unit tests: content hashes and Batch job names (hypothesis for arbitrary unicode)."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from snakemake_executor_knot.names import batch_job_name, canonical_json, short_hash

VALID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")

rules = st.text(min_size=1, max_size=200)
wildcard_maps = st.dictionaries(st.text(max_size=30), st.text(max_size=300), max_size=6)
jobids = st.integers(min_value=0, max_value=10**12)


def test_canonical_json_sorts_keys_and_is_compact():
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": None}]}) == (
        '{"a":[1,{"c":null,"d":2}],"b":1}'
    )


def test_short_hash_of_objects_strings_and_bytes():
    assert short_hash({"b": 1, "a": 2}) == short_hash({"a": 2, "b": 1})
    assert short_hash({"a": 1}) != short_hash({"a": 2})
    assert short_hash("abc", n=64) == hashlib.sha256(b"abc").hexdigest()
    assert short_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()[:16]
    assert len(short_hash([1, 2], n=8)) == 8


def test_readable_name_starts_with_rule_then_wildcard_values():
    name = batch_job_name("fit", {"subject": "sub-01", "run": "2"}, 12)
    assert re.fullmatch(r"fit-sub_01-2-j12-[0-9a-f]{8}", name)


def test_invalid_characters_are_replaced_and_name_starts_alphanumeric():
    name = batch_job_name("_prep", {"path": "a/b c.txt"}, 3)
    assert name.startswith("prep-a_b_c_txt-j3-")


def test_rule_of_only_invalid_characters_still_gives_a_valid_name():
    name = batch_job_name("ü", {}, 7)
    assert VALID_NAME.fullmatch(name) and name.startswith("j7-")


def test_long_names_are_truncated_but_keep_jobid_and_hash():
    long = {"w": "x" * 500}
    name = batch_job_name("rule", long, 123456)
    assert len(name) == 128 and name.startswith("rule-xxxx")
    assert re.search(r"-j123456-[0-9a-f]{8}$", name)
    other = batch_job_name("rule", {"w": "x" * 499 + "y"}, 123456)
    assert other != name and other[:100] == name[:100]


@given(rules, wildcard_maps, jobids)
def test_names_are_always_valid_batch_names(rule, wildcards, jobid):
    name = batch_job_name(rule, wildcards, jobid)
    assert VALID_NAME.fullmatch(name), name
    assert f"-j{jobid}-" in f"-{name}"


@settings(max_examples=100)
@given(rules, wildcard_maps, jobids, rules, wildcard_maps, jobids)
def test_different_jobs_get_different_names(rule1, wc1, id1, rule2, wc2, id2):
    if (rule1, list(wc1.items()), id1) != (rule2, list(wc2.items()), id2):
        assert batch_job_name(rule1, wc1, id1) != batch_job_name(rule2, wc2, id2)


@given(rules, wildcard_maps, jobids)
def test_lossy_sanitising_does_not_merge_names(rule, wildcards, jobid):
    # "a b" and "a_b" sanitise alike; the hash keeps them apart.
    variant = rule + " " if not rule.endswith(" ") else rule[:-1] + "_"
    assert batch_job_name(rule, wildcards, jobid) != batch_job_name(variant, wildcards, jobid)


@given(rules, wildcard_maps, jobids)
def test_names_are_deterministic(rule, wildcards, jobid):
    assert batch_job_name(rule, wildcards, jobid) == batch_job_name(rule, dict(wildcards), jobid)


@given(rules, wildcard_maps, jobids, jobids)
def test_different_jobids_never_share_a_name(rule, wildcards, id1, id2):
    # Deterministic: the jobid is kept whole, whatever truncation does to the rest.
    if id1 != id2:
        assert batch_job_name(rule, wildcards, id1) != batch_job_name(rule, wildcards, id2)
