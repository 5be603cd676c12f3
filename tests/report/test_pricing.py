"""Prices: the shipped table, a job's share of an instance, instance choice, and the Price
List API through botocore's Stubber."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import date

import botocore.session
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from snakemake_executor_knot.report.pricing import (
    InstancePrice,
    PriceTable,
    allowed_type,
    choose_instance,
    job_cost,
    load_prices,
    on_demand_price,
    price_context,
    prices_note,
    pricing_filters,
    refresh_prices,
    spot_history,
    stale_warning,
    with_refreshed,
)
from snakemake_executor_knot.report.records import Pricing

M5_LARGE = InstancePrice("m5.large", 2, 8, 0, on_demand_usd_hr=0.096, spot_usd_hr=0.0336)
SMALL_TABLE = {
    p.name: p
    for p in (
        InstancePrice("c5.large", 2, 4, 0, 0.085, 0.03),
        M5_LARGE,
        InstancePrice("r5.large", 2, 16, 0, 0.126, 0.0441),
        InstancePrice("c5.xlarge", 4, 8, 0, 0.17, 0.06),
        InstancePrice("g4dn.xlarge", 4, 16, 1, 0.526, 0.18),
    )
}
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1")


def test_shipped_table_covers_the_regions_and_types():
    table = load_prices()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.as_of)
    assert "approximation" in table.source and f"{table.spot_fraction:g}" in table.source
    sizes = ("large", "xlarge", "2xlarge", "4xlarge")
    expected = {f"{f}.{s}" for f in ("m5", "m6i", "c5", "c6i", "r5", "r6i") for s in sizes}
    expected |= {"g4dn.xlarge", "g5.xlarge", "p3.2xlarge"}
    assert set(table.regions) == set(REGIONS)
    for region in REGIONS:
        prices = table.regions[region]
        assert set(prices) == expected
        for price in prices.values():
            assert price.spot_usd_hr == pytest.approx(
                price.on_demand_usd_hr * table.spot_fraction, abs=1e-4
            )
    assert table.regions["us-east-1"]["m5.large"].on_demand_usd_hr == 0.096
    assert table.regions["us-east-1"]["r5.4xlarge"].memory_gib == 128


def test_job_cost_is_the_cpu_share_when_cpu_binds():
    # 1 of 2 vCPUs, 2 of 8 GiB: half the instance for half an hour at 0.096/h.
    assert job_cost(1, 2048, 1800, M5_LARGE, "on-demand") == pytest.approx(0.024)


def test_job_cost_is_the_memory_share_when_memory_binds():
    # 0.5 of 2 vCPUs (0.25), 6 of 8 GiB (0.75): 0.75 x 0.0336 for an hour.
    assert job_cost(0.5, 6144, 3600, M5_LARGE, "spot") == pytest.approx(0.0252)


def test_job_cost_never_exceeds_the_whole_instance():
    assert job_cost(4, 32768, 3600, M5_LARGE, "on-demand") == pytest.approx(0.096)
    assert job_cost(1, 1024, -5, M5_LARGE, "on-demand") == 0


@pytest.mark.parametrize(
    ("vcpus", "memory_mib", "types", "gpus", "expected"),
    [
        (1, 3000, ["optimal"], 0, "c5.large"),
        (2, 6000, ["optimal"], 0, "m5.large"),
        (2, 12000, ["optimal"], 0, "r5.large"),
        (2, 6000, ["c5"], 0, "c5.xlarge"),
        (2, 6000, ["c5.large", "m5.large"], 0, "m5.large"),
        (4, 1024, ["m5.large"], 0, None),
        (2, 1024, ["g4dn"], 1, "g4dn.xlarge"),
        (2, 1024, ["optimal"], 1, None),
        (64, 1024, ["optimal"], 0, None),
    ],
)
def test_choose_instance_is_the_cheapest_allowed_fit(vcpus, memory_mib, types, gpus, expected):
    choice = choose_instance(vcpus, memory_mib, types, SMALL_TABLE, gpus)
    if expected is None:
        assert choice is None
    else:
        assert (choice.instance.name, choice.estimate) == (expected, True)


def test_optimal_means_the_m_c_and_r_families():
    names = sorted(load_prices().regions["us-east-1"])
    optimal = {name.split(".")[0] for name in names if allowed_type(name, ["optimal"])}
    assert optimal == {"m5", "m6i", "c5", "c6i", "r5", "r6i"}


def test_pricing_filters():
    assert pricing_filters("eu-west-1", "c5.large") == [
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "c5.large"},
        {"Type": "TERM_MATCH", "Field": "location", "Value": "EU (Ireland)"},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
    ]
    unknown = pricing_filters("sa-east-1", "c5.large")[1]
    assert unknown == {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "sa-east-1"}


def price_list_item(instance_type: str, usd: str, unit: str = "Hrs") -> str:
    """One PriceList entry as the API returns it: a JSON document in a string."""
    sku = "8VCNEHQMSCQS4P39"
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {
                    "instanceType": instance_type,
                    "location": "US East (N. Virginia)",
                    "regionCode": "us-east-1",
                    "operatingSystem": "Linux",
                    "tenancy": "Shared",
                    "preInstalledSw": "NA",
                    "capacitystatus": "Used",
                    "vcpu": "2",
                    "memory": "8 GiB",
                    "servicecode": "AmazonEC2",
                },
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": unit,
                                "endRange": "Inf",
                                "description": f"${usd} per On Demand Linux {instance_type}",
                                "appliesTo": [],
                                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                                "beginRange": "0",
                                "pricePerUnit": {"USD": usd},
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2026-11-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                }
            },
            "version": "20261101000000",
            "publicationDate": "2026-11-01T00:00:00Z",
        }
    )


def pricing_client():
    session = botocore.session.get_session()
    return session.create_client(
        "pricing",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def expected_request(instance_type: str, **extra: object) -> dict:
    return {
        "ServiceCode": "AmazonEC2",
        "Filters": pricing_filters("us-east-1", instance_type),
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
        **extra,
    }


def test_refresh_prices_reads_the_price_list():
    client = pricing_client()
    with Stubber(client) as stub:
        stub.add_response(
            "get_products",
            {
                "FormatVersion": "aws_v1",
                "PriceList": [price_list_item("m5.large", "0.0000000000", unit="Quantity")],
                "NextToken": "page-2",
            },
            expected_request("m5.large"),
        )
        stub.add_response(
            "get_products",
            {"FormatVersion": "aws_v1", "PriceList": [price_list_item("m5.large", "0.0990000000")]},
            expected_request("m5.large", NextToken="page-2"),
        )
        stub.add_response(
            "get_products", {"FormatVersion": "aws_v1", "PriceList": []}, expected_request("x1.big")
        )
        prices = refresh_prices(client, "us-east-1", ["m5.large", "x1.big"])
        stub.assert_no_pending_responses()
    assert prices == {"m5.large": 0.099}


def test_refresh_prices_on_a_client_error_is_empty():
    client = pricing_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_products", "ThrottlingException", "Rate exceeded")
        assert refresh_prices(client, "us-east-1", ["m5.large"]) == {}


def test_refresh_prices_on_a_botocore_error_is_empty():
    class Unreachable:
        def get_products(self, **kwargs):
            raise EndpointConnectionError(
                endpoint_url="https://api.pricing.us-east-1.amazonaws.com"
            )

    assert refresh_prices(Unreachable(), "us-east-1", ["m5.large"]) == {}


@pytest.mark.parametrize("item", ["{not json", "[]", '{"terms": {"OnDemand": []}}', "null"])
def test_malformed_price_list_entries_have_no_price(item):
    assert on_demand_price(item) is None


def test_with_refreshed_replaces_on_demand_and_rederives_spot():
    table = PriceTable("2025-01-01", "test", 0.5, {"us-east-1": dict(SMALL_TABLE)})
    new = with_refreshed(table, "eu-north-1", {"m5.large": 0.1, "zz.large": 1.0}, on="2026-11-29")
    assert new.regions["us-east-1"] == SMALL_TABLE
    assert new.regions["eu-north-1"] == {
        "m5.large": InstancePrice("m5.large", 2, 8, 0, 0.1, 0.05),
    }
    assert new.refreshed == {"eu-north-1": "2026-11-29, 1 of 1 types"}
    assert with_refreshed(table, "us-east-1", {}, on="2026-11-29") is table


# --- spot prices from the account's history; the table's age ---------------------------


def test_spot_history_gives_each_types_mean_price_over_the_run(clients):
    """moto answers DescribeSpotPriceHistory with one fixed price per availability zone
    that offers the type; the mean over the zones is that price."""
    prices = spot_history(clients.ec2, ["m5.large", "c5.large"], time.time() - 600, time.time())
    assert prices == {"m5.large": 0.00001, "c5.large": 0.00001}
    assert spot_history(clients.ec2, [], 0, 1) == {}


class SpotPages:
    """A paginator over hostile history pages."""

    def __init__(self, pages):
        self.pages = pages

    def get_paginator(self, name):
        assert name == "describe_spot_price_history"
        return self

    def paginate(self, **kwargs):
        assert kwargs["InstanceTypes"] == ["m5.large"]
        assert "Linux/UNIX" in kwargs["ProductDescriptions"]
        return iter(self.pages)


def test_spot_history_skips_what_is_not_a_price():
    entries = [
        {"InstanceType": "m5.large", "SpotPrice": "0.04"},
        {"InstanceType": "m5.large", "SpotPrice": "0.02"},
        {"InstanceType": "m5.large", "SpotPrice": "nan"},
        {"InstanceType": "m5.large", "SpotPrice": "-1"},
        {"InstanceType": "m5.large", "SpotPrice": ["0.5"]},
        {"InstanceType": "x1.evil", "SpotPrice": "9"},
        "not an entry",
    ]
    assert spot_history(SpotPages([{"SpotPriceHistory": entries}]), ["m5.large"], 0, 1) == {
        "m5.large": 0.03
    }


def test_spot_history_that_cannot_be_read_is_empty():
    class Refusing:
        def get_paginator(self, _name):
            raise ClientError({"Error": {"Code": "UnauthorizedOperation"}}, "Describe")

    assert spot_history(Refusing(), ["m5.large"], 0, 1) == {}


def test_history_prices_replace_the_spot_fraction_and_the_note_says_so():
    table = PriceTable("2025-01-01", "test", 0.35, {"us-east-1": SMALL_TABLE})
    pricing = Pricing(region="us-east-1", market="spot")
    context = price_context(pricing, table, {"m5.large": 0.02, "zz.unknown": 1.0})
    assert context.prices["m5.large"].spot_usd_hr == 0.02
    assert context.prices["c5.large"].spot_usd_hr == 0.03  # from the fraction
    note = prices_note(context, estimated=False)
    assert "Spot prices of m5.large come from the account's spot price history" in note
    # On demand, the history changes nothing.
    on_demand = price_context(Pricing(region="us-east-1"), table, {"m5.large": 0.02})
    assert on_demand.table is table
    assert "could not be read" in prices_note(price_context(pricing, table), False)


def test_a_table_older_than_90_days_is_warned_about():
    table = PriceTable("2025-01-01", "test", 0.35, {"us-east-1": SMALL_TABLE})
    assert stale_warning(table, "us-east-1", date(2025, 4, 1)) is None  # 90 days
    warning = stale_warning(table, "us-east-1", date(2025, 4, 2))
    assert warning and "from 2025-01-01, 91 days ago" in warning and "--refresh-prices" in warning
    refreshed = with_refreshed(table, "us-east-1", {"m5.large": 0.1}, on="2025-04-02")
    assert stale_warning(refreshed, "us-east-1", date(2026, 1, 1)) is None
    assert (
        stale_warning(dataclasses.replace(table, as_of="soon"), "us-east-1", date.today()) is None
    )
