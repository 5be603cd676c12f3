"""The --knot-compute-classes grammar, its errors, and classes read back from a stack."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.config.classes import (
    EXAMPLE,
    ComputeClass,
    class_from_record,
    logical_prefix,
    parse_classes,
)
from snakemake_executor_knot.config.settings import ExecutorSettings, KnotConfig, parse_settings
from snakemake_executor_knot.errors import ConfigError

BASE = ComputeClass("default", ("optimal",), spot=True, root_volume_gb=30, max_vcpus=256)


def test_the_issues_example_parses_and_left_out_options_take_the_stack_wide_flags():
    config = parse_settings(
        ExecutorSettings(
            compute_classes="default=optimal; gpu=g5,g4dn; bigdisk=m6i:500GB",
            max_vcpus=64,
            on_demand=True,
        )
    )
    assert config.default_class == ComputeClass("default", ("optimal",), False, 30, 64)
    assert config.classes == (
        ComputeClass("gpu", ("g5", "g4dn"), False, 30, 64),
        ComputeClass("bigdisk", ("m6i",), False, 500, 64),
    )
    assert [c.name for c in config.compute_classes] == ["default", "gpu", "bigdisk"]
    assert config.classes[0].has_gpus and not config.classes[1].has_gpus


def test_every_option_in_any_order_and_case():
    (found,) = parse_classes(" big = M6i.4xlarge , r6i : maxvcpus=32 : OnDemand : 200GiB ", BASE)
    assert found == ComputeClass("big", ("m6i.4xlarge", "r6i"), False, 200, 32)
    (spot,) = parse_classes("cheap=c5:spot:64G;", BASE.__class__("x", (), False, 30, 8))
    assert (spot.spot, spot.root_volume_gb, spot.max_vcpus) == (True, 64, 8)


def test_the_example_in_the_errors_parses_itself():
    names = [c.name for c in parse_classes(EXAMPLE, BASE)]
    assert names == ["default", "gpu", "bigdisk"]


def test_a_default_entry_overrides_the_stack_wide_flags():
    config = parse_settings(ExecutorSettings(compute_classes="default=c5,m5:100GB:ondemand"))
    assert (config.instance_types, config.root_volume_gb, config.spot) == (("c5", "m5"), 100, False)
    assert config.classes == ()


def test_no_setting_leaves_one_default_class_from_the_flags():
    config = parse_settings(ExecutorSettings(instance_types="c5", root_volume_gb=50))
    assert config.classes == ()
    assert config.compute_classes == (ComputeClass("default", ("c5",), True, 50, 256),)
    assert parse_settings(ExecutorSettings()) == KnotConfig()


@pytest.mark.parametrize(
    ("text", "part", "why"),
    [
        ("gpu g5", "gpu g5", "has no '='"),
        ("GPU=g5", "GPU", "is not a class name"),
        ("big-disk=m6i", "big-disk", "is not a class name"),
        ("gpu=", "gpu=", "lists no instance types"),
        ("gpu=g5/xlarge", "g5/xlarge", "is not an instance type"),
        ("bigdisk=m6i:500TB", "500TB", "is not a volume size (500GB), 'spot', 'ondemand'"),
        ("bigdisk=m6i:maxvcpus=lots", "maxvcpus=lots", "is not a volume size"),
        ("tiny=t3:4GB", "tiny=t3:4GB", "asks for a root volume outside 8 to 16384 GB"),
        ("none=c5:maxvcpus=0", "none=c5:maxvcpus=0", "needs maxvcpus of at least 1"),
        ("a=c5; a=m5", "a=m5", "defines the class 'a' a second time"),
        (";".join(f"c{i}=m5" for i in range(11)), "11 classes", "is more than 10"),
    ],
)
def test_a_class_that_does_not_parse_names_the_part_and_shows_an_example(text, part, why):
    with pytest.raises(ConfigError) as caught:
        parse_classes(text, BASE)
    message = str(caught.value)
    assert message.startswith(f"--knot-compute-classes: '{part}' {why}")
    assert "name=types[:VOLUME][:spot|:ondemand][:maxvcpus=N]" in message
    assert EXAMPLE in message


def test_a_class_is_all_gpu_or_none_and_the_default_has_none():
    with pytest.raises(ConfigError, match=r"class 'fast' mixes GPU types \(g4dn\)"):
        parse_classes("fast=c5,g4dn", BASE)
    with pytest.raises(ConfigError, match=r"default compute class has GPU .*\"gpu=p3\""):
        parse_settings(ExecutorSettings(compute_classes="default=p3"))


def test_a_class_survives_the_round_trip_through_the_stack():
    for klass in parse_classes(EXAMPLE, BASE):
        assert class_from_record(klass.name, klass.as_record()) == klass


@pytest.mark.parametrize(
    ("name", "record"),
    [
        ("gpu", {"instance_types": "g5", "spot": True, "root_volume_gb": 30, "max_vcpus": 8}),
        ("gpu", {"instance_types": [1], "spot": True, "root_volume_gb": 30, "max_vcpus": 8}),
        ("gpu", {"instance_types": ["g5"], "spot": True, "root_volume_gb": None}),
        ("gpu;x=c5", {"instance_types": ["g5"], "root_volume_gb": 30, "max_vcpus": 8}),
        ("Bad", {"instance_types": ["c5"], "root_volume_gb": 30, "max_vcpus": 8}),
        (3, {}),
        ("gpu", ["g5"]),
    ],
)
def test_a_hostile_recorded_class_is_a_config_error(name, record):
    with pytest.raises(ConfigError, match="records a compute class it cannot read"):
        class_from_record(name, record)


def test_only_the_default_class_keeps_the_ids_from_before_classes():
    assert logical_prefix("default") == ""
    assert logical_prefix("gpu") == "ClassGpu"
    assert logical_prefix("bigdisk2") == "ClassBigdisk2"


# ------------------------------------------------------------------------ the input cache


def test_cache_option_sets_the_class_cap_and_reads_back_in_its_description():
    (found,) = parse_classes("ref=m6i:500GB:cache=200GB", BASE)
    assert (found.cache_gb, found.cache_bytes) == (200, 200 * 1024**3)
    assert found.describe() == "ref=m6i:500GB:spot:maxvcpus=256:cache=200GB"
    (again,) = parse_classes(found.describe(), BASE)
    assert again.cache_gb == 200


def test_a_default_entry_gives_the_default_class_its_cache():
    config = parse_settings(ExecutorSettings(compute_classes="default=c5:100GB:cache=50GiB"))
    assert config.default_class.cache_gb == 50
    assert config.compute_class("default").cache_bytes == 50 * 1024**3
    assert parse_settings(ExecutorSettings()).default_class.cache_gb == 0


def test_a_class_without_cache_option_has_none_and_does_not_inherit_it():
    (found,) = parse_classes("plain=c5", BASE.__class__("default", ("c5",), True, 300, 8, 0, 100))
    assert found.cache_gb == 0


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("ref=m6i:100GB:cache=200GB", "':208GB' or more"),  # larger than the volume
        ("ref=m6i:100GB:cache=100GB", "':cache=92GB' at most"),  # leaves jobs nothing
        ("ref=m6i:cache=30GB", "':cache=22GB' at most"),  # the stack-wide 30 GB volume
    ],
)
def test_a_cache_the_volume_cannot_hold_is_refused_before_anything(text, hint):
    with pytest.raises(ConfigError) as caught:
        parse_settings(ExecutorSettings(compute_classes=text))
    message = str(caught.value)
    assert "class 'ref'" in message and "input cache" in message and hint in message


@pytest.mark.parametrize("option", ["cache=", "cache=lots", "cache=-5GB", "cache=5TB"])
def test_a_malformed_cache_option_is_refused(option):
    with pytest.raises(ConfigError, match="cache=SIZE"):
        parse_classes(f"ref=m6i:{option}", BASE)


def test_the_cache_is_a_runs_setting_not_part_of_the_deployed_class():
    (with_cache,) = parse_classes("ref=m6i:500GB:cache=200GB", BASE)
    (without,) = parse_classes("ref=m6i:500GB", BASE)
    assert with_cache == without  # the stack does not change when only the cap does
    assert with_cache.as_record() == without.as_record()
    assert class_from_record("ref", with_cache.as_record()).cache_gb == 0
