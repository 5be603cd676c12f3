"""Bad settings stop the executor before it creates anything: each case goes through
``Executor.__post_init__`` against in-process moto, and afterwards the account holds no
stack and no bucket."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from snakemake_executor_knot.config.settings import ExecutorSettings, bucket_name_problem
from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.executor import Executor

CASES = {
    "storage_prefix_upper_case": ({}, "s3://My_Results/run1", "--default-storage-prefix"),
    "storage_prefix_ip_address": ({}, "s3://192.168.1.10/run1", "--default-storage-prefix"),
    "storage_prefix_double_dot": ({}, "s3://my..results/x", "--default-storage-prefix"),
    "storage_prefix_reserved": ({}, "s3://xn--results/x", "--default-storage-prefix"),
    "aws_tag": ({"tags": "team=neuro,aws:owner=me"}, None, "--knot-tags: the key 'aws:owner'"),
    "aws_tag_upper_case": ({"tags": "AWS:Owner=me"}, None, "starts with 'aws:'"),
    "knot_own_tag": ({"tags": "knot:run=mine"}, None, "knot sets the tag 'knot:run'"),
    "too_many_tags": (
        {"tags": ",".join(f"k{i}=v" for i in range(44))},
        None,
        "44 tags; AWS allows 50 on a Batch job and knot sets 7 of its own",
    ),
    "budget_zero": ({"budget": "0"}, None, "--knot-budget '0' is not a positive number"),
    "budget_negative": ({"budget": "-5"}, None, "--knot-budget '-5' is not a positive"),
    "budget_text": ({"budget": "ten"}, None, "--knot-budget 'ten' is not a positive number"),
    "budget_nan": ({"budget": "nan"}, None, "--knot-budget 'nan'"),
    "budget_infinite": ({"budget": "inf"}, None, "--knot-budget 'inf'"),
    "zero_max_vcpus": ({"max_vcpus": 0}, None, "--knot-max-vcpus"),
    "min_above_max": ({"min_vcpus": 10, "max_vcpus": 4}, None, "--knot-min-vcpus"),
    "bid_zero": ({"spot_bid_percentage": 0}, None, "--knot-spot-bid-percentage"),
    "bid_above_100": ({"spot_bid_percentage": 150}, None, "--knot-spot-bid-percentage"),
    "retries_ten": ({"spot_retries": 10}, None, "--knot-spot-retries"),
    "volume_too_small": ({"root_volume_gb": 4}, None, "--knot-root-volume-gb"),
    "volume_too_large": ({"root_volume_gb": 20000}, None, "16384"),
    "rate_zero": ({"submit_rate": 0}, None, "--knot-submit-rate"),
    "rate_above_aws_limit": ({"submit_rate": 80}, None, "at most 50"),
    "files_expiry_zero": ({"files_expiry_days": 0}, None, "--knot-files-expiry-days"),
    "bad_extra_bucket": ({"buckets": "ok-bucket,Not_OK"}, None, "--knot-buckets"),
    # Stack names that differ only in case would share an ECR repository and a bucket
    # pattern: refused, naming the flag and its variable.
    "upper_case_stack_name": (
        {"stack_name": "Team-Pipeline"},
        None,
        "--knot-stack-name 'Team-Pipeline' (SNAKEMAKE_KNOT_STACK_NAME) has upper-case letters",
    ),
    "stack_name_with_underscore": ({"stack_name": "my_stack"}, None, "--knot-stack-name"),
    "gpu_types_in_the_default_class": (
        {"instance_types": "g5"},
        None,
        "The default compute class has GPU instance types (g5)",
    ),
    "class_mixing_gpu_and_cpu": (
        {"compute_classes": "fast=c5,g4dn"},
        None,
        "class 'fast' mixes GPU types (g4dn)",
    ),
    "class_that_does_not_parse": (
        {"compute_classes": "gpu=g5:fast"},
        None,
        "--knot-compute-classes: 'fast' is not a volume size",
    ),
    "default_class_below_min_vcpus": (
        {"compute_classes": "default=optimal:maxvcpus=2", "min_vcpus": 4},
        None,
        "The default compute class allows 2 vCPUs, fewer than --knot-min-vcpus 4",
    ),
}


def _executor(settings: dict, prefix: str | None) -> Executor:
    """An Executor about to start, with Snakemake's workflow reduced to what knot reads."""
    workflow = SimpleNamespace(
        executor_settings=ExecutorSettings(**settings),
        storage_settings=SimpleNamespace(default_storage_prefix=prefix),
        remote_execution_settings=SimpleNamespace(seconds_between_status_checks=10),
    )
    executor = object.__new__(Executor)
    executor.workflow = workflow
    return executor


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_setting_is_a_config_error_before_anything_exists(case, clients):
    settings, prefix, expected = CASES[case]
    with pytest.raises(ConfigError) as caught:
        Executor.__post_init__(_executor(settings, prefix))
    assert expected in str(caught.value)
    assert clients.cloudformation.describe_stacks()["Stacks"] == []
    assert clients.s3.list_buckets()["Buckets"] == []


def test_the_message_says_what_to_do():
    with pytest.raises(ConfigError) as caught:
        Executor.__post_init__(_executor({}, "s3://Bad_Bucket/x"))
    assert "Use a prefix such as 's3://my-results/run1'" in str(caught.value)


@pytest.mark.parametrize("name", ["my-results", "a.b.c", "abc", "x" * 63, "results-2024"])
def test_valid_bucket_names_pass(name):
    assert bucket_name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["ab", "x" * 64, "-abc", "abc-", "ABC", "a_b", "a..b", "10.0.0.1", "sthree-x",
             "data-s3alias", "b--x-s3"],
)  # fmt: skip
def test_invalid_bucket_names_are_named(name):
    assert bucket_name_problem(name)
