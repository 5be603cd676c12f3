"""One job's forecast: scaling found only where the history shows it, ranges, unknowns."""

from __future__ import annotations

import math

import pytest

from snakemake_executor_knot.forecast.history import Sample
from snakemake_executor_knot.forecast.predict import (
    AS_IS,
    MIN_MARGIN,
    SCALED,
    UNKNOWN,
    JobRequest,
    fit,
    predict_job,
    rule_model,
)
from snakemake_executor_knot.report.pricing import job_cost, load_prices

PRICES = load_prices().regions["us-east-1"]
M5 = PRICES["m5.large"]
REQUEST = JobRequest(vcpus=1, memory_mib=2048, instance=M5, market="on-demand", timeout_s=600)


def sample(seconds: float, size: float | None, **more) -> Sample:
    return Sample("r1", "work", seconds, input_bytes=size, **more)


def test_runtime_growing_with_input_is_scaled():
    model = rule_model("work", [sample(12, 1e6), sample(22, 2e6), sample(42, 4e6)])
    assert model.kind == SCALED
    forecast = predict_job(model, 8e6, REQUEST)
    assert forecast.kind == SCALED
    assert forecast.seconds.mid == pytest.approx(82, rel=0.01)  # 2 s + 10 s per MB
    assert forecast.seconds.low < 82 < forecast.seconds.high
    assert forecast.cost_usd.mid == pytest.approx(job_cost(1, 2048, 82, M5, "on-demand"), 0.01)
    assert forecast.vcpu_hours.mid == pytest.approx(82 / 3600, rel=0.01)


def test_flat_or_noisy_history_is_taken_as_is():
    flat = rule_model("work", [sample(10, 1e6), sample(11, 2e6), sample(10, 4e6)])
    noisy = rule_model("work", [sample(10, 1e6), sample(40, 2e6), sample(12, 4e6)])
    for model in (flat, noisy):
        assert model.kind == AS_IS
        forecast = predict_job(model, 100e6, REQUEST)
        assert forecast.kind == AS_IS
        assert forecast.seconds.mid == model.seconds.middle
    noisy_forecast = predict_job(noisy, 1e6, REQUEST)
    assert (noisy_forecast.seconds.low, noisy_forecast.seconds.high) == (10, 40)


@pytest.mark.parametrize(
    "points",
    [
        [(1e6, 10.0), (2e6, 20.0)],  # too few samples
        [(1e6, 10.0), (1.1e6, 11.0), (1.2e6, 12.0)],  # inputs too alike
        [(None, 10.0), (None, 20.0), (None, 40.0)],  # no input sizes
        [(1e6, 40.0), (2e6, 20.0), (4e6, 10.0)],  # shrinking
    ],
)
def test_no_relation_without_evidence(points):
    assert fit(points).kind == AS_IS


def test_a_single_sample_gets_the_minimum_margin():
    forecast = predict_job(rule_model("work", [sample(100, 1e6)]), 1e6, REQUEST)
    assert forecast.seconds.low == pytest.approx(100 * (1 - MIN_MARGIN))
    assert forecast.seconds.high == pytest.approx(100 * (1 + MIN_MARGIN))


def test_unknown_input_size_uses_the_history_middle():
    model = rule_model("work", [sample(12, 1e6), sample(22, 2e6), sample(42, 4e6)])
    forecast = predict_job(model, None, REQUEST)
    assert forecast.kind == AS_IS and forecast.seconds.mid == 22


def test_latency_adds_the_hosts_overhead_and_outputs_follow_inputs():
    model = rule_model(
        "work",
        [
            sample(10, 1e6, latency_s=15, output_bytes=2e6),
            sample(20, 2e6, latency_s=25, output_bytes=4e6),
            sample(40, 4e6, latency_s=45, output_bytes=8e6),
        ],
    )
    forecast = predict_job(model, 3e6, REQUEST)
    assert forecast.latency_s.mid == pytest.approx(forecast.seconds.mid + 5)
    assert forecast.output_bytes == pytest.approx(6e6, rel=0.01)


def test_a_rule_that_never_ran_is_bounded_by_its_runtime_limit():
    forecast = predict_job(rule_model("new", []), 1e6, REQUEST)
    assert forecast.kind == UNKNOWN
    assert math.isnan(forecast.seconds.mid) and forecast.seconds.high == 600
    assert forecast.cost_usd.high == pytest.approx(job_cost(1, 2048, 600, M5, "on-demand"))
    unlimited = JobRequest(1, 2048, M5, "spot", timeout_s=None)
    assert predict_job(rule_model("new", []), None, unlimited).cost_usd.high == math.inf
