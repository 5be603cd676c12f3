"""EC2 prices, and what a job's share of an instance cost.

knot ships a dated price table (``prices.json``: on-demand prices as AWS published them, spot
as a stated fraction of those). ``refresh_prices`` asks the AWS Price List API for current
on-demand prices; the client is injected, and on any AWS error the table is used instead.
Everything else here is pure.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError
from .records import JobRecord, Pricing

DEFAULT_REGION = "us-east-1"
# "optimal" in a Batch compute environment means the general purpose, compute and memory
# optimised families.
OPTIMAL_FAMILIES = frozenset("mcr")
# The Price List API filters on the region's long name, not its code.
LOCATIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-central-1": "EU (Frankfurt)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
}
_FAMILY_CLASS = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class InstancePrice:
    """One instance type's size and hourly prices in one region."""

    name: str
    vcpus: float
    memory_gib: float
    gpus: int
    on_demand_usd_hr: float
    spot_usd_hr: float

    def hourly(self, market: str) -> float:
        """USD per hour in ``market`` ("spot" or "on-demand")."""
        return self.spot_usd_hr if market == "spot" else self.on_demand_usd_hr


@dataclass(frozen=True)
class PriceTable:
    """Prices per region and instance type, with where they came from."""

    as_of: str
    source: str
    spot_fraction: float
    regions: Mapping[str, Mapping[str, InstancePrice]]
    # region -> how its on-demand prices were refreshed ("2026-11-29, 46 of 46 types")
    refreshed: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # region -> where its spot prices came from, when not the spot fraction
    spot_from: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """The instance a job is priced on; ``estimate`` when knot inferred the type."""

    instance: InstancePrice
    estimate: bool


@dataclass(frozen=True)
class PriceContext:
    """The prices one run is costed with: a table, the region used, the market and the
    instance types its compute environment may choose from."""

    table: PriceTable
    region: str
    asked_region: str | None
    market: str
    instance_types: tuple[str, ...]
    emulator: bool = False

    @property
    def prices(self) -> Mapping[str, InstancePrice]:
        """This region's prices."""
        return self.table.regions.get(self.region, {})


def price_context(
    pricing: Pricing, table: PriceTable, spot: Mapping[str, float] | None = None
) -> PriceContext:
    """How a run with the record's ``pricing`` is costed from ``table``; ``spot``: the spot
    prices the run read from the account's history, which replace the table's."""
    region, _ = region_prices(table, pricing.region)
    if spot and pricing.market == "spot":
        table = with_spot(table, region, spot)
    return PriceContext(
        table=table,
        region=region,
        asked_region=pricing.region,
        market=pricing.market,
        instance_types=pricing.instance_types,
        emulator=pricing.emulator,
    )


def billed_seconds(job: JobRecord) -> float | None:
    """How long the job held its share of an instance: Batch's start to stop, else the
    container's own start to end, else the rule's wall time."""
    batch, usage = job.batch, job.usage
    if batch.started is not None and batch.stopped is not None:
        return max(batch.stopped - batch.started, 0.0)
    if usage.start is not None and usage.end is not None:
        return max(usage.end - usage.start, 0.0)
    return usage.wall_s


def price_job(
    job: JobRecord, vcpus: float, memory_mib: float, context: PriceContext
) -> tuple[float, Choice] | None:
    """The cost of ``job`` had it requested ``vcpus`` and ``memory_mib``, and the instance it
    is priced on: its recorded type when the table knows it, else the cheapest that fits
    (an estimate, as is a type the record marks estimated). None when its duration is unknown
    or no type fits."""
    seconds = billed_seconds(job)
    if seconds is None:
        return None
    # An estimated type was chosen for the job's own request: a resized request re-chooses.
    known = None if job.instance_estimated else context.prices.get(job.instance_type or "")
    gpus = job.requested.gpus or 0
    choice: Choice | None
    if known is not None:
        choice = Choice(known, estimate=False)
    else:
        choice = choose_instance(vcpus, memory_mib, context.instance_types, context.prices, gpus)
    if choice is None:
        return None
    return job_cost(vcpus, memory_mib, seconds, choice.instance, context.market), choice


def prices_note(context: PriceContext, estimated: bool) -> str:
    """One paragraph saying which prices a report used and how far to trust them."""
    table, region = context.table, context.region
    parts = [f"{context.market.capitalize()} prices for {region}"]
    if region in table.refreshed:
        parts.append(
            f": on-demand refreshed from the AWS Price List API ({table.refreshed[region]}), "
            f"the rest from knot's price table of {table.as_of}."
        )
    else:
        parts.append(f" from knot's price table of {table.as_of}.")
    if context.market == "spot" and region in table.spot_from:
        parts.append(
            f" Spot prices of {table.spot_from[region]} come from the account's spot price "
            "history over the run (EC2 DescribeSpotPriceHistory, Linux/UNIX, the mean over "
            f"availability zones); other types are approximated as {table.spot_fraction:g} x "
            "on-demand."
        )
    elif context.market == "spot":
        parts.append(
            f" Spot is approximated as {table.spot_fraction:g} x on-demand (the account's spot "
            "price history could not be read for this run); real spot prices vary by hour "
            "and availability zone."
        )
    if context.asked_region and context.asked_region != region:
        parts.append(f" The table has no {context.asked_region}: {region} prices are used.")
    if estimated:
        parts.append(
            " Where Batch did not report the instance type, the job is priced on the cheapest "
            "allowed type that fits its request: an estimate."
        )
    if context.emulator:
        parts.append(
            " This run used the local emulator, which runs jobs on no instance: each job is "
            "priced on the type the compute environment would have chosen for its request, an "
            "estimate of what it would cost on AWS."
        )
    return "".join(parts)


# What a job's cost counts, and what it leaves out; the report states both.
COST_INCLUDES = (
    "each job's share of the EC2 instance it ran on (the larger of its vCPU and memory "
    "fractions), from Batch's start to its stop"
)
COST_EXCLUDES = (
    "instance time no job used (start-up, idle capacity before the compute environment "
    "scales down), EBS volumes, S3 storage and requests, ECR image storage, CloudWatch "
    "Logs, data transfer out of AWS (downloads), and anything outside knot's stack"
)
STALE_AFTER_DAYS = 90
SPOT_HISTORY_PAGES = 20  # DescribeSpotPriceHistory pages read at most (1000 entries each)


def stale_warning(table: PriceTable, region: str, today: date) -> str | None:
    """A warning when the table's on-demand prices for ``region`` are older than
    STALE_AFTER_DAYS and were not refreshed; None otherwise (or for an unreadable date)."""
    if region in table.refreshed:
        return None
    try:
        age = (today - date.fromisoformat(table.as_of)).days
    except ValueError:
        return None
    if age <= STALE_AFTER_DAYS:
        return None
    return (
        f"knot's price table is from {table.as_of}, {age} days ago: prices may have changed. "
        "Run 'knot report --refresh-prices' for current on-demand prices."
    )


def spot_history(ec2, types: Iterable[str], start: float, end: float) -> dict[str, float]:
    """The mean spot price (USD per hour) of each of ``types`` over ``start``..``end``
    (epoch seconds) across availability zones, from EC2 DescribeSpotPriceHistory for
    Linux/UNIX; entries that are not positive finite prices are skipped. ``{}`` when the
    history cannot be read (the caller then uses the table's spot fraction)."""
    wanted = sorted(set(types))
    if not wanted:
        return {}
    seen: dict[str, list[float]] = {}
    try:
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=wanted,
            ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            StartTime=datetime.fromtimestamp(start, UTC),
            EndTime=datetime.fromtimestamp(max(end, start), UTC),
        )
        for page in itertools.islice(pages, SPOT_HISTORY_PAGES):
            for entry in page.get("SpotPriceHistory", []):
                _add_spot(seen, entry, wanted)
    except (BotoCoreError, ClientError, OverflowError, ValueError, OSError):
        return {}
    return {name: round(sum(p) / len(p), 6) for name, p in seen.items()}


def _add_spot(seen: dict[str, list[float]], entry: object, wanted: list[str]) -> None:
    name = _get(entry, "InstanceType")
    try:
        price = _usd(_get(entry, "SpotPrice"))
    except (TypeError, ValueError):
        return
    if name in wanted and isinstance(name, str) and math.isfinite(price) and price > 0:
        seen.setdefault(name, []).append(price)


def with_spot(table: PriceTable, region: str, prices: Mapping[str, float]) -> PriceTable:
    """``table`` with ``region``'s spot prices of the types in ``prices`` replaced."""
    current = dict(table.regions.get(region, {}))
    applied = []
    for name, usd in sorted(prices.items()):
        shape = current.get(name) or _any_region(table, name)
        if shape is not None:
            current[name] = dataclasses.replace(shape, spot_usd_hr=usd)
            applied.append(name)
    if not applied:
        return table
    regions = {**table.regions, region: current}
    return dataclasses.replace(
        table, regions=regions, spot_from={**table.spot_from, region: ", ".join(applied)}
    )


def load_prices() -> PriceTable:
    """The price table shipped with knot."""
    text = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    return parse_prices(json.loads(text))


def parse_prices(data: Mapping) -> PriceTable:
    """A PriceTable from the JSON layout of ``prices.json``."""
    try:
        regions = {
            region: {name: _instance(name, entry) for name, entry in types.items()}
            for region, types in data["regions"].items()
        }
        return PriceTable(
            as_of=str(data["as_of"]),
            source=str(data["source"]),
            spot_fraction=float(data["spot_fraction"]),
            regions=regions,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"knot's price table is damaged ({exc!r}); reinstall knot.") from exc


def region_prices(table: PriceTable, region: str | None) -> tuple[str, Mapping[str, InstancePrice]]:
    """The region whose prices are used (``region`` if the table has it, else us-east-1) and
    its prices."""
    used = region if region is not None and region in table.regions else DEFAULT_REGION
    return used, table.regions.get(used, {})


def job_cost(
    vcpus: float, memory_mib: float, seconds: float, instance: InstancePrice, market: str
) -> float:
    """USD for a job's share of ``instance`` in ``market`` over ``seconds``.

    The share is the larger of the job's vCPU and memory fractions of the instance: the
    binding resource decides how many such jobs fit on one instance, and the other resource's
    leftover cannot be sold to anyone else. A job never pays for more than the whole instance.
    """
    by_cpu = vcpus / instance.vcpus
    by_memory = memory_mib / (instance.memory_gib * 1024)
    share = min(max(by_cpu, by_memory), 1.0)
    return instance.hourly(market) * share * max(seconds, 0.0) / 3600


def choose_instance(
    vcpus: float,
    memory_mib: float,
    instance_types: Iterable[str],
    table: Mapping[str, InstancePrice],
    gpus: float = 0,
) -> Choice | None:
    """The cheapest type in ``table`` (one region's prices) that fits the request, among the
    configured ``instance_types``; None if none fits. Always an estimate: Batch may have
    placed the job on a larger instance it had running anyway."""
    allowed = tuple(instance_types)
    fits = [
        price
        for price in table.values()
        if allowed_type(price.name, allowed)
        and price.vcpus >= vcpus
        and price.memory_gib * 1024 >= memory_mib
        and price.gpus >= gpus
    ]
    if not fits:
        return None
    # Between equal prices the smaller instance wins: Batch packs small jobs on small hosts.
    cheapest = min(fits, key=lambda p: (p.on_demand_usd_hr, p.vcpus, p.memory_gib, p.name))
    return Choice(cheapest, estimate=True)


def allowed_type(name: str, instance_types: Iterable[str]) -> bool:
    """Whether a compute environment configured with ``instance_types`` may use ``name``:
    an entry is a type ("m5.large"), a family ("m5") or "optimal" (m, c and r families)."""
    family = name.split(".", 1)[0]
    letters = _FAMILY_CLASS.match(family)
    for entry in instance_types:
        if entry == "optimal" and letters and letters.group(0) in OPTIMAL_FAMILIES:
            return True
        if entry in (name, family):
            return True
    return False


def pricing_filters(region: str, instance_type: str) -> list[dict[str, str]]:
    """Price List API filters for a Linux, shared-tenancy, on-demand ``instance_type``."""
    where = ("location", LOCATIONS[region]) if region in LOCATIONS else ("regionCode", region)
    terms = (
        ("instanceType", instance_type),
        where,
        ("operatingSystem", "Linux"),
        ("tenancy", "Shared"),
        ("preInstalledSw", "NA"),
        # "Used" is an ordinary running instance, not a capacity reservation.
        ("capacitystatus", "Used"),
    )
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in terms]


def refresh_prices(pricing_client, region: str, types: Iterable[str]) -> dict[str, float]:
    """Current on-demand USD per hour of ``types`` in ``region``, from the AWS Price List API.

    Types the API does not price are left out. On any AWS error the answer is ``{}``: the
    caller falls back to the shipped table, which is the right outcome for a report.
    """
    found = {}
    try:
        for name in types:
            price = _lookup(pricing_client, region, name)
            if price is not None:
                found[name] = price
    except (BotoCoreError, ClientError):
        return {}
    return found


def with_refreshed(
    table: PriceTable, region: str, prices: Mapping[str, float], on: str
) -> PriceTable:
    """``table`` with ``region``'s on-demand prices replaced by ``prices`` (refreshed on the
    date ``on``), and spot re-derived from them by the table's spot fraction."""
    if not prices:
        return table
    current = dict(table.regions.get(region, {}))
    applied = 0
    for name, usd in prices.items():
        shape = current.get(name) or _any_region(table, name)
        if shape is not None:
            spot = round(usd * table.spot_fraction, 6)
            current[name] = dataclasses.replace(shape, on_demand_usd_hr=usd, spot_usd_hr=spot)
            applied += 1
    regions = {**table.regions, region: current}
    note = f"{on}, {applied} of {len(current)} types"
    return dataclasses.replace(table, regions=regions, refreshed={**table.refreshed, region: note})


def on_demand_price(item: str | Mapping) -> float | None:
    """The hourly USD price in one PriceList entry (a JSON string), or None if it has none."""
    try:
        product = json.loads(item) if isinstance(item, str) else item
        for term in _values(_get(product, "terms", "OnDemand")):
            for dimension in _values(_get(term, "priceDimensions")):
                usd = _get(dimension, "pricePerUnit", "USD")
                if _get(dimension, "unit") == "Hrs" and usd is not None and _usd(usd) > 0:
                    return _usd(usd)
    # A malformed entry is skipped; the table's price stands for that type.
    except (ValueError, TypeError):
        return None
    return None


def _lookup(pricing_client, region: str, instance_type: str) -> float | None:
    kwargs = {
        "ServiceCode": "AmazonEC2",
        "Filters": pricing_filters(region, instance_type),
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
    }
    while True:
        page = pricing_client.get_products(**kwargs)
        for item in page.get("PriceList", []):
            price = on_demand_price(item)
            if price is not None:
                return price
        if not page.get("NextToken"):
            return None
        kwargs["NextToken"] = page["NextToken"]


def _instance(name: str, entry: Mapping) -> InstancePrice:
    return InstancePrice(
        name=name,
        vcpus=float(entry["vcpus"]),
        memory_gib=float(entry["memory_gib"]),
        gpus=int(entry.get("gpus", 0)),
        on_demand_usd_hr=float(entry["on_demand_usd_hr"]),
        spot_usd_hr=float(entry["spot_usd_hr"]),
    )


def _any_region(table: PriceTable, name: str) -> InstancePrice | None:
    """The type's size from any region: sizes do not change between regions."""
    for prices in table.regions.values():
        if name in prices:
            return prices[name]
    return None


def _usd(value: object) -> float:
    """A price as float() reads it; TypeError for what float() refuses too."""
    if not isinstance(value, str | int | float):
        raise TypeError(f"not a price: {value!r:.40}")
    return float(value)


def _get(obj: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _values(obj: object) -> list:
    return list(obj.values()) if isinstance(obj, Mapping) else []
