"""One job's forecast from its rule's history (pure).

A rule's samples either show that a quantity grows with the job's input bytes, and the
forecast is scaled by the job's own input (``scaled``), or they do not, and the samples are
taken as they are (``as-is``). A rule without samples is ``unknown``: its cost is bounded by
what its request would cost at its ``runtime`` limit.

``predict_job`` is the one entry point other parts of knot use (the budget's estimate of what
is in flight): a rule's ``RuleModel`` (``rule_model``), a job's input bytes and its request.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ..report.pricing import InstancePrice, job_cost
from .history import Sample

SCALED, AS_IS, UNKNOWN = "scaled", "as-is", "unknown"
# A relation needs this many samples, inputs differing at least this much (largest over
# smallest), and a straight line explaining this share of the variance.
MIN_SCALING_SAMPLES = 3
MIN_SPREAD = 1.5
MIN_R2 = 0.8
# The range is never narrower than this around the middle: a few samples understate the
# spread a new run meets (other load on the hosts, a slower instance).
MIN_MARGIN = 0.15


@dataclass(frozen=True)
class Range:
    """A forecast: the middle and the range around it."""

    low: float
    mid: float
    high: float

    def scaled(self, factor: float) -> Range:
        return Range(self.low * factor, self.mid * factor, self.high * factor)

    def __add__(self, other: Range) -> Range:
        return Range(self.low + other.low, self.mid + other.mid, self.high + other.high)

    def as_dict(self, digits: int = 6) -> dict[str, float]:
        return {k: round(getattr(self, k), digits) for k in ("low", "mid", "high")}


ZERO = Range(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Fit:
    """``y = intercept + slope * input_bytes`` (scaled), or the samples' middle (as-is);
    ``low``/``high`` are the smallest and largest ratio of a sample to the fit."""

    kind: str
    intercept: float
    slope: float
    low: float
    high: float
    samples: int
    middle: float  # the samples' median, for a job whose input bytes are not known

    def at(self, input_bytes: float | None) -> Range:
        if self.kind != SCALED:
            base = self.intercept
        elif input_bytes is None:
            base = self.middle
        else:
            base = max(self.intercept + self.slope * input_bytes, 0.0)
        low = min(self.low, 1 - MIN_MARGIN)
        high = max(self.high, 1 + MIN_MARGIN)
        return Range(base * low, base, base * high)


@dataclass(frozen=True)
class RuleModel:
    """What a rule's history says: its runtime, the host's overhead around it, its output
    bytes and peak memory; None fits for a rule that never ran."""

    rule: str
    seconds: Fit | None
    # handed-over-to-reported minus billed seconds: the host's submission, Batch's queue and
    # the wait for the next status check (its spread is the polling interval's)
    overhead_s: Range = Range(0.0, 0.0, 0.0)
    output_bytes: Fit | None = None
    peak_rss_mb: Range | None = None

    @property
    def kind(self) -> str:
        return self.seconds.kind if self.seconds else UNKNOWN


@dataclass(frozen=True)
class JobRequest:
    """What one job asks Batch for, the instance it is priced on, the market, and its
    ``runtime`` limit in seconds (None: no limit)."""

    vcpus: float
    memory_mib: float
    instance: InstancePrice | None
    market: str
    timeout_s: float | None = None


@dataclass(frozen=True)
class JobForecast:
    """One job: billed seconds, seconds the run waits for it, vCPU-hours, cost in USD. For
    an unknown rule, ``seconds`` and ``cost`` run from 0 to the runtime limit's (``inf``
    without a limit)."""

    kind: str
    seconds: Range
    latency_s: Range
    vcpu_hours: Range
    cost_usd: Range
    output_bytes: float | None


def rule_model(rule: str, samples: Sequence[Sample]) -> RuleModel:
    """The rule's model from its samples (any number, none included)."""
    if not samples:
        return RuleModel(rule, None)
    overheads = [s.latency_s - s.seconds for s in samples if s.latency_s is not None]
    peaks = [s.peak_rss_mb for s in samples if s.peak_rss_mb is not None]
    outputs = [(s.input_bytes, s.output_bytes) for s in samples if s.output_bytes is not None]
    return RuleModel(
        rule,
        fit([(s.input_bytes, s.seconds) for s in samples]),
        _spread(overheads),
        fit(outputs) if outputs else None,
        Range(min(peaks), statistics.median(peaks), max(peaks)) if peaks else None,
    )


def _spread(values: Sequence[float]) -> Range:
    """Smallest, median and largest of ``values`` (none below 0); all 0 without any."""
    if not values:
        return Range(0.0, 0.0, 0.0)
    kept = [max(v, 0.0) for v in values]
    return Range(min(kept), statistics.median(kept), max(kept))


def fit(points: Sequence[tuple[float | None, float]]) -> Fit:
    """A straight line through (input bytes, y) when the points show one, else the middle of
    the ys; ``points`` is not empty."""
    line = _line([(x, y) for x, y in points if x is not None])
    ys = [y for _, y in points]
    if line is not None:
        intercept, slope = line
        ratios = [y / max(intercept + slope * x, 1e-9) for x, y in points if x is not None]
        return Fit(
            SCALED, intercept, slope, min(ratios), max(ratios), len(ys), statistics.median(ys)
        )
    mid = statistics.median(ys)
    if mid <= 0:
        return Fit(AS_IS, 0.0, 0.0, 1.0, 1.0, len(ys), 0.0)
    return Fit(AS_IS, mid, 0.0, min(ys) / mid, max(ys) / mid, len(ys), mid)


def _line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares (intercept, slope) when the inputs spread enough, the slope is positive
    and the line explains the ys; else None."""
    if len(points) < MIN_SCALING_SAMPLES:
        return None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    if min(xs) <= 0 or max(xs) / min(xs) < MIN_SPREAD:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0 or sxy <= 0:
        return None
    slope = sxy / sxx
    if sxy * sxy / (sxx * syy) < MIN_R2:
        return None
    return my - slope * mx, slope


def predict_job(model: RuleModel, input_bytes: float | None, request: JobRequest) -> JobForecast:
    """One job of ``model``'s rule with ``input_bytes`` of input (None: not known, the
    history's middle is used), asking for ``request``."""
    if model.seconds is None:
        return _unknown(request)
    seconds = model.seconds.at(input_bytes)
    latency = seconds + model.overhead_s
    output = model.output_bytes.at(input_bytes).mid if model.output_bytes else None
    return JobForecast(
        kind=model.kind if input_bytes is not None else AS_IS,
        seconds=seconds,
        latency_s=latency,
        vcpu_hours=seconds.scaled(request.vcpus / 3600),
        cost_usd=_cost(seconds, request),
        output_bytes=output,
    )


def _unknown(request: JobRequest) -> JobForecast:
    limit = request.timeout_s if request.timeout_s is not None else math.inf
    seconds = Range(0.0, math.nan, limit)
    return JobForecast(
        kind=UNKNOWN,
        seconds=seconds,
        latency_s=seconds,
        vcpu_hours=seconds.scaled(request.vcpus / 3600),
        cost_usd=_cost(seconds, request),
        output_bytes=None,
    )


def _cost(seconds: Range, request: JobRequest) -> Range:
    """USD at the request's share of its instance (as ``knot report`` prices a job); NaN
    when no allowed instance type fits the request."""
    instance = request.instance
    if instance is None:
        return Range(math.nan, math.nan, math.nan)

    def usd(s: float) -> float:
        if math.isnan(s) or math.isinf(s):
            return s
        return job_cost(request.vcpus, request.memory_mib, s, instance, request.market)

    return Range(usd(seconds.low), usd(seconds.mid), usd(seconds.high))
