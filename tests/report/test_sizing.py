"""Right-sizing: memory rounding, the thread cap, and the profile block."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from snakemake_executor_knot.report.records import parse_run
from snakemake_executor_knot.report.sizing import profile_block, suggest_mem_mb, suggest_threads

from . import samples


def _jobs(*usages: dict, vcpus: float | None = 4) -> list:
    records = [
        samples.job(i, requested={"vcpus": vcpus, "memory_mib": 8192}, usage=usage)
        for i, usage in enumerate(usages)
    ]
    return list(parse_run(samples.run(records)).jobs)


@pytest.mark.parametrize(
    ("peaks", "expected"),
    [
        ([950.0], 1536),  # 1187.5 -> 3 x 512
        ([409.6], 512),  # exactly 512 after headroom: not a step more
        ([819.2], 1024),  # 1024.0000000000001 in floats: still 1024
        ([10.0], 512),  # at least 512
        ([0.0], 512),
        ([300.0, 2000.0, None], 2560),  # the largest peak decides: 2500 -> 5 x 512
        ([None], None),
    ],
)
def test_suggested_memory_rounds_up_to_512(peaks, expected):
    assert suggest_mem_mb(_jobs(*({"peak_rss_mb": p} for p in peaks))) == expected


@given(st.floats(min_value=0, max_value=1e7))
def test_suggested_memory_has_headroom_and_is_a_step(peak):
    mem = suggest_mem_mb(_jobs({"peak_rss_mb": peak}))
    assert mem % 512 == 0 and mem >= 512
    assert mem >= peak * 1.25 - 1e-6
    assert mem - 512 < max(peak * 1.25, 1)


@pytest.mark.parametrize(
    ("usages", "vcpus", "expected"),
    [
        ([{"cpu_s": 30.1, "wall_s": 17.5}], 4, 2),  # 1.72 cores
        ([{"cpu_s": 20.0, "wall_s": 10.0}], 4, 2),  # exactly 2
        ([{"cpu_s": 70.0, "wall_s": 10.0}], 4, 4),  # 7 cores' worth, capped at the request
        ([{"cpu_s": 30.1, "wall_s": 17.5}], 1, 1),
        ([{"cpu_s": 0.0, "wall_s": 10.0}], 4, 1),  # at least 1
        ([{"cpu_s": 10.0, "wall_s": 10.0}, {"cpu_s": 25.0, "wall_s": 10.0}], 8, 3),
        ([{"cpu_s": 30.0, "wall_s": 10.0}], None, 3),  # no request, no cap
        ([{"cpu_s": 30.0, "wall_s": 10.0}], 0.5, 1),  # a Fargate-style half vCPU
        ([{"cpu_s": 5.0, "wall_s": 0.0}, {"cpu_s": 5.0}], 4, None),  # nothing measurable
    ],
)
def test_suggested_threads_between_one_and_the_request(usages, vcpus, expected):
    assert suggest_threads(_jobs(*usages, vcpus=vcpus)) == expected


@given(
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0.001, max_value=1e6),
    st.integers(min_value=1, max_value=192),
)
def test_suggested_threads_never_exceed_the_request(cpu, wall, vcpus):
    threads = suggest_threads(_jobs({"cpu_s": cpu, "wall_s": wall}, vcpus=vcpus))
    assert 1 <= threads <= vcpus


def test_profile_block_parses_into_snakemake_profile_keys():
    rows = [
        {"rule": "fit", "suggested_mem_mb": 1536, "suggested_threads": 2},
        {"rule": "yes", "suggested_mem_mb": 512, "suggested_threads": 1},
        {"rule": "plot", "suggested_mem_mb": None, "suggested_threads": None},
        {"rule": "(unknown rule)", "suggested_mem_mb": 512, "suggested_threads": 1},
    ]
    block = profile_block(rows)
    assert block.startswith("# ")
    assert yaml.safe_load(block) == {
        "set-resources": {"fit": {"mem_mb": 1536}, "yes": {"mem_mb": 512}},
        "set-threads": {"fit": 2, "yes": 1},
    }


def test_profile_block_without_suggestions_is_only_comments():
    block = profile_block([{"rule": "a", "suggested_mem_mb": None, "suggested_threads": None}])
    assert yaml.safe_load(block) is None
    assert "no suggestions" in block
