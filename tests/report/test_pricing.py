"""Prices: the shipped table, a job's share of an instance, instance choice, and the Price
List API through botocore's Stubber."""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from snakemake_executor_knot.report.pricing import (
    InstancePrice,
    PriceTable,
    allowed_type,
    choose_instance,
    job_cost,
    load_prices,
    on_demand_price,
    pricing_filters,
    refresh_prices,
    with_refreshed,
)

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
