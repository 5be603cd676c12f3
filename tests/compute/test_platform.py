"""The image platform from instance types: Graviton families, Batch's keywords, a mix."""

from __future__ import annotations

import pytest

from snakemake_executor_knot.compute.platform import platform_for
from snakemake_executor_knot.errors import ConfigError


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ((), "linux/amd64"),
        (("optimal",), "linux/amd64"),
        (("default_x86_64",), "linux/amd64"),
        (("c5.large", "m6i", "g4dn.xlarge", "p4d"), "linux/amd64"),
        (("default_arm64",), "linux/arm64"),
        (("a1.medium", "m6g", "c7g.large", "r8g", "t4g.micro"), "linux/arm64"),
        (("x2gd.xlarge", "im4gn.large", "g5g.2xlarge", "c6gn", "M7GD.large"), "linux/arm64"),
    ],
)
def test_platform_for(types, expected):
    assert platform_for(types) == expected


def test_platform_for_a_mix_names_both_sides():
    with pytest.raises(ConfigError) as info:
        platform_for(("m6g.large", "c5.large", "optimal"))
    assert "arm64 (m6g.large)" in str(info.value)
    assert "x86_64 (c5.large, optimal)" in str(info.value)
