"""Live fetchers against a local HTTP server (and moto) replaying real-shaped responses.

Responses start from the samples in ../shared/data/pricing/samples and are varied field by field;
failure cases: paging, throttling (HTTP 429 → retry with backoff), a timeout, garbage JSON — and
garbage never replaces good prices.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from thrifty.catalog import fetch_aws, fetch_azure, fetch_gcp
from thrifty.catalog.refresh import refresh_live
from thrifty.catalog.store import read_prices, save_prices
from thrifty.errors import CatalogError
from thrifty.settings import Settings

from .conftest import PriceServer, Reply

# -- Azure -------------------------------------------------------------------------------------


def _azure_item(sample: dict[str, Any], **fields: Any) -> dict[str, Any]:
    item = copy.deepcopy(sample["Items"][0])  # a real item (Windows, DevTest) as the template
    item.update(
        {
            "type": "Consumption",
            "productName": "Virtual Machines Dsv5 Series",
            "armRegionName": "eastus",
            "location": "US East",
        }
    )
    return item | fields


@pytest.fixture
def azure_sample(samples: Path) -> dict[str, Any]:
    return json.loads((samples / "azure_retail_prices_response_excerpt.json").read_text())


def _azure_pages(sample: dict[str, Any], base: str) -> tuple[dict[str, Any], dict[str, Any]]:
    page1 = copy.deepcopy(sample)
    page1["Items"] = [
        _azure_item(sample, skuName="D4s v5", armSkuName="Standard_D4s_v5", retailPrice=0.192),
        _azure_item(sample, skuName="D4s v5 Spot", armSkuName="Standard_D4s_v5", retailPrice=0.0384),
        _azure_item(sample, skuName="D4s v5 Low Priority", armSkuName="Standard_D4s_v5", retailPrice=0.0384),
        sample["Items"][0],  # Windows DevTest row: skipped
    ]
    page1["NextPageLink"] = f"{base}/api/retail/prices?$skip=100"
    page2 = copy.deepcopy(sample)
    page2["Items"] = [
        _azure_item(sample, skuName="F2s v2", armSkuName="Standard_F2s_v2", retailPrice=0.0846),
        _azure_item(
            sample,
            skuName="D2s v5",
            armSkuName="Standard_D2s_v5",
            retailPrice=0.2,
            productName="X Series Windows",
        ),
    ]
    page2["NextPageLink"] = None
    return page1, page2


def test_azure_paging_and_sku_rules(price_server: PriceServer, azure_sample: dict[str, Any]) -> None:
    price_server.queue(*(Reply(page) for page in _azure_pages(azure_sample, price_server.url)))
    table = fetch_azure.fetch_azure(["eastus"], base_url=f"{price_server.url}/api/retail/prices")
    got = {(r.instance_type, r.price_model): r.usd_per_hour for r in table.itertuples()}
    # Low Priority and Windows rows are skipped; " Spot" → spot
    assert got == {
        ("Standard_D4s_v5", "on_demand"): 0.192,
        ("Standard_D4s_v5", "spot"): 0.0384,
        ("Standard_F2s_v2", "on_demand"): 0.0846,
    }
    shapes = {r.instance_type: (r.vcpus, r.memory_gib) for r in table.itertuples()}
    assert shapes["Standard_D4s_v5"] == (4.0, 16.0) and shapes["Standard_F2s_v2"] == (2.0, 4.0)
    first, second = price_server.requests
    assert "armRegionName eq 'eastus'" in first["query"]["$filter"][0]
    assert second["query"]["$skip"] == ["100"]  # followed NextPageLink


def test_azure_retries_throttling_then_succeeds(
    price_server: PriceServer, azure_sample: dict[str, Any]
) -> None:
    page1, _ = _azure_pages(azure_sample, price_server.url)
    page1["NextPageLink"] = None
    price_server.queue(Reply({"error": "TooManyRequests"}, 429, headers={"Retry-After": "0"}), Reply(page1))
    table = fetch_azure.fetch_azure(["eastus"], base_url=price_server.url, backoff_s=0.01)
    assert len(table) == 2
    assert len(price_server.requests) == 2


def test_azure_gives_up_after_persistent_throttling(price_server: PriceServer) -> None:
    price_server.queue(*[Reply({"error": "TooManyRequests"}, 429) for _ in range(4)])
    with pytest.raises(CatalogError, match="failed after 4 attempts: HTTP 429"):
        fetch_azure.fetch_azure(["eastus"], base_url=price_server.url, backoff_s=0.01)


def test_azure_timeout_becomes_catalog_error(price_server: PriceServer, azure_sample: dict[str, Any]) -> None:
    price_server.queue(*[Reply(azure_sample, delay_s=1.0) for _ in range(4)])
    with httpx.Client(timeout=0.2) as client, pytest.raises(CatalogError, match="timed out"):
        fetch_azure.fetch_azure(["eastus"], base_url=price_server.url, client=client, backoff_s=0.01)


@pytest.mark.parametrize("garbage", ["<html>503 Service Unavailable</html>", '{"Items": [', "[1, 2, 3]"])
def test_azure_garbage_is_an_error(price_server: PriceServer, garbage: str) -> None:
    price_server.queue(Reply(garbage))
    with pytest.raises(CatalogError, match=r"not JSON|not an object"):
        fetch_azure.fetch_azure(["eastus"], base_url=price_server.url, backoff_s=0.01)


def test_garbage_never_replaces_good_prices(
    registry: Any,
    price_server: PriceServer,
    azure_sample: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    page1, page2 = _azure_pages(azure_sample, price_server.url)
    price_server.queue(Reply(page1), Reply(page2), Reply("garbage, not JSON"))

    def azure() -> Any:
        return fetch_azure.fetch_azure(["eastus"], base_url=price_server.url, backoff_s=0.01)

    good = refresh_live(registry, Settings(home=tmp_path), ["azure"], fetchers={"azure": azure})
    assert good.written["azure"] == 3 and not good.failed
    before = read_prices(registry)
    with caplog.at_level(logging.ERROR, logger="thrifty.catalog.refresh"):
        bad = refresh_live(registry, Settings(home=tmp_path), ["azure"], fetchers={"azure": azure})
    assert "not JSON" in bad.failed["azure"] and "azure" not in bad.written
    assert "previous prices stay in force" in caplog.text
    after = read_prices(registry)
    vms_before = before[(before["provider"] == "azure") & (before["price_model"] != "serverless")]
    vms_after = after[(after["provider"] == "azure") & (after["price_model"] != "serverless")]
    azure_before = vms_before.sort_values(["instance_type", "price_model"])
    azure_after = vms_after.sort_values(["instance_type", "price_model"])
    assert len(azure_after) == 3
    assert list(azure_after["usd_per_hour"]) == list(azure_before["usd_per_hour"])
    assert list(azure_after["observed_at"]) == list(azure_before["observed_at"])


# -- GCP ---------------------------------------------------------------------------------------


def _sku(sample: dict[str, Any], description: str, nanos: int, usage: str = "OnDemand", **extra: Any) -> Any:
    sku = copy.deepcopy(sample["skus"][0])
    sku["description"] = description
    sku["category"] = {
        "serviceDisplayName": "Compute Engine",
        "resourceFamily": "Compute",
        "usageType": usage,
    }
    sku["serviceRegions"] = ["us-central1"]
    expression = sku["pricingInfo"][0]["pricingExpression"]
    expression["usageUnit"] = "GiBy.h" if "Ram" in description else "h"
    expression["tieredRates"] = [
        {"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD", "units": "0", "nanos": nanos}}
    ]
    return sku | extra


@pytest.fixture
def gcp_pages(samples: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    sample = json.loads((samples / "gcp_cloudbilling_skus_list_one_sku.json").read_text())
    page1 = {
        "skus": [
            sample["skus"][0],  # the real network-egress SKU: not Compute, skipped
            _sku(sample, "N2 Instance Core running in Americas", 31_611_000),
            _sku(sample, "N2 Instance Ram running in Americas", 4_237_000),
            _sku(sample, "Spot Preemptible N2 Instance Core running in Americas", 7_650_000, "Preemptible"),
            _sku(sample, "Spot Preemptible N2 Instance Ram running in Americas", 1_025_000, "Preemptible"),
            _sku(sample, "Commitment v1: N2 Cpu in Americas for 1 Year", 19_915_000, "Commit1Yr"),
        ],
        "nextPageToken": "page-2",
    }
    page2 = {
        "skus": [
            _sku(sample, "G2 Instance Core running in Americas", 24_988_000),
            _sku(sample, "G2 Instance Ram running in Americas", 2_928_000),
            _sku(sample, "Nvidia L4 GPU running in Americas", 560_040_000),
        ],
        "nextPageToken": "",
    }
    return page1, page2


def test_gcp_composes_machine_prices_across_pages(
    price_server: PriceServer, gcp_pages: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    price_server.queue(*(Reply(page) for page in gcp_pages))
    table = fetch_gcp.fetch_gcp("test-key", base_url=price_server.url)
    prices = {(r.instance_type, r.price_model): r.usd_per_hour for r in table.itertuples()}
    # n2-standard-4 = 4 vCPU x 0.031611 + 16 GiB x 0.004237 (units + nanos/1e9)
    assert prices[("n2-standard-4", "on_demand")] == pytest.approx(4 * 0.031611 + 16 * 0.004237)
    assert prices[("n2-standard-4", "spot")] == pytest.approx(4 * 0.00765 + 16 * 0.001025)
    # g2-standard-4 = machine + one L4 (no spot L4 SKU → no spot row for the GPU VM)
    assert prices[("g2-standard-4", "on_demand")] == pytest.approx(4 * 0.024988 + 16 * 0.002928 + 0.56004)
    assert ("g2-standard-4", "spot") not in prices
    first, second = price_server.requests
    assert first["path"] == "/v1/services/6F81-5844-456A/skus"
    assert first["query"]["key"] == ["test-key"] and second["query"]["pageToken"] == ["page-2"]


def test_gcp_needs_an_api_key_and_rejects_garbage(price_server: PriceServer) -> None:
    with pytest.raises(CatalogError, match="THRIFTY_GCP_API_KEY"):
        fetch_gcp.fetch_gcp("", base_url=price_server.url)
    price_server.queue(Reply("not json at all"))
    with pytest.raises(CatalogError, match="not JSON"):
        fetch_gcp.fetch_gcp("k", base_url=price_server.url, backoff_s=0.01)


def test_gcp_throttled_then_ok(
    price_server: PriceServer, gcp_pages: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    page1, _ = gcp_pages
    page1 = page1 | {"nextPageToken": ""}
    price_server.queue(Reply({"error": {"code": 429}}, 429, headers={"Retry-After": "0"}), Reply(page1))
    table = fetch_gcp.fetch_gcp("k", base_url=price_server.url, backoff_s=0.01)
    assert "n2-standard-2" in set(table["instance_type"])


# -- AWS ---------------------------------------------------------------------------------------


@pytest.fixture
def aws_item(samples: Path) -> dict[str, Any]:
    return json.loads((samples / "aws_pricing_get_products_m5_large_pricelist_item.json").read_text())


def _m5_xlarge(item: dict[str, Any]) -> dict[str, Any]:
    bigger = copy.deepcopy(item)
    bigger["product"]["attributes"] |= {"instanceType": "m5.xlarge", "vcpu": "4", "memory": "16 GiB"}
    for term in bigger["terms"]["OnDemand"].values():
        for dimension in term["priceDimensions"].values():
            dimension["pricePerUnit"]["USD"] = "0.1920000000"
    return bigger


def _pricing_client(url: str) -> Any:
    return fetch_aws.make_client("pricing", "us-east-1", endpoint_url=url, timeout_s=2, max_attempts=3)


def test_aws_price_list_pages_json_strings(price_server: PriceServer, aws_item: dict[str, Any]) -> None:
    page1 = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(aws_item)], "NextToken": "t-2"}
    page2 = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(_m5_xlarge(aws_item)), "{not json"]}
    price_server.queue(Reply(page1), Reply(page2))
    table = fetch_aws.fetch_aws_on_demand("us-east-1", client=_pricing_client(price_server.url))
    got = {r.instance_type: (r.usd_per_hour, r.vcpus, r.memory_gib) for r in table.itertuples()}
    assert got == {"m5.large": (0.096, 2.0, 8.0), "m5.xlarge": (0.192, 4.0, 16.0)}  # garbage item skipped
    first = price_server.requests[0]
    assert first["target"] == "AWSPriceListService.GetProducts"
    body = json.loads(first["body"])
    assert body["ServiceCode"] == "AmazonEC2"
    assert {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"} in body["Filters"]
    assert json.loads(price_server.requests[1]["body"])["NextToken"] == "t-2"


def test_aws_price_list_retries_throttling(price_server: PriceServer, aws_item: dict[str, Any]) -> None:
    throttled = Reply({"__type": "ThrottlingException", "message": "Rate exceeded"}, 429)
    price_server.queue(throttled, Reply({"FormatVersion": "aws_v1", "PriceList": [json.dumps(aws_item)]}))
    table = fetch_aws.fetch_aws_on_demand("us-east-1", client=_pricing_client(price_server.url))
    assert list(table["instance_type"]) == ["m5.large"]
    assert len(price_server.requests) == 2


def test_aws_timeout_becomes_catalog_error(price_server: PriceServer, aws_item: dict[str, Any]) -> None:
    slow = Reply({"FormatVersion": "aws_v1", "PriceList": [json.dumps(aws_item)]}, delay_s=1.0)
    price_server.queue(*[slow] * 5)
    client = fetch_aws.make_client(
        "pricing", "us-east-1", endpoint_url=price_server.url, timeout_s=0.2, max_attempts=2
    )
    with pytest.raises(CatalogError, match=r"(?i)read timeout"):
        fetch_aws.fetch_aws_on_demand("us-east-1", client=client)


def test_aws_garbage_body_is_an_error(price_server: PriceServer) -> None:
    price_server.queue(Reply("<html>oops</html>"))
    with pytest.raises(CatalogError, match=r"pricing\.get_products"):
        fetch_aws.fetch_aws_on_demand("us-east-1", client=_pricing_client(price_server.url))


def test_aws_spot_history_via_moto(moto_server: str) -> None:
    client = fetch_aws.make_client("ec2", "us-east-1", endpoint_url=moto_server)
    shapes = fetch_aws.parse_spot_history([], "us-east-1")  # empty table with the right columns
    assert shapes.empty
    table = fetch_aws.fetch_aws_spot("us-east-1", instance_types=["m5.large"], client=client)
    assert not table.empty
    assert set(table["instance_type"]) == {"m5.large"} and set(table["price_model"]) == {"spot"}
    assert table["zone"].str.startswith("us-east-1").all()
    assert table["zone"].is_unique  # newest price per zone


def test_spot_history_sample_keeps_the_newest_per_zone(samples: Path) -> None:
    history = json.loads((samples / "aws_ec2_describe_spot_price_history_m5_large.json").read_text())
    entries = history["SpotPriceHistory"]
    advisor = fetch_aws.parse_spot_advisor(
        json.loads((samples / "aws_spot_advisor_data_excerpt.json").read_text())
    )
    shapes = fetch_aws.parse_spot_history(entries, "us-east-1").iloc[0:0]
    table = fetch_aws.parse_spot_history(entries, "us-east-1", shapes, advisor)
    newest: dict[str, tuple[str, str]] = {}
    for entry in entries:  # independent oracle: max timestamp per zone
        zone = entry["AvailabilityZone"]
        if zone not in newest or entry["Timestamp"] > newest[zone][0]:
            newest[zone] = (entry["Timestamp"], entry["SpotPrice"])
    got = {r.zone: r.usd_per_hour for r in table.itertuples()}
    assert got == {zone: pytest.approx(float(price)) for zone, (_, price) in newest.items()}
    assert set(table["interruption_bucket"]) == {"15-20%"}  # m5.large, us-east-1, Linux: r = 3


def test_spot_advisor_parsing(samples: Path) -> None:
    advisor = fetch_aws.parse_spot_advisor(
        json.loads((samples / "aws_spot_advisor_data_excerpt.json").read_text())
    )
    row = advisor[(advisor["instance_type"] == "inf2.xlarge") & (advisor["os"] == "Linux")].iloc[0]
    assert (row["interruption_bucket"], row["savings_pct_vs_ondemand"]) == ("<5%", 78.0)
    assert len(advisor) == 7


def test_saved_live_rows_read_back(
    registry: Any, price_server: PriceServer, aws_item: dict[str, Any]
) -> None:
    price_server.queue(Reply({"FormatVersion": "aws_v1", "PriceList": [json.dumps(aws_item)]}))
    table = fetch_aws.fetch_aws_on_demand("us-east-1", client=_pricing_client(price_server.url))
    assert save_prices(registry, table) == 1
    back = read_prices(registry)
    assert back.iloc[0]["source"] == "AWS Price List API get_products"
    assert type(back.iloc[0]["usd_per_hour"].item()) is float


def test_spot_advisor_feed_over_http(price_server: PriceServer, samples: Path) -> None:
    feed = json.loads((samples / "aws_spot_advisor_data_excerpt.json").read_text())
    price_server.queue(
        Reply({"error": "SlowDown"}, 503), Reply(feed), Reply({"ranges": [], "spot_advisor": {}})
    )
    advisor = fetch_aws.fetch_spot_advisor(f"{price_server.url}/spot-advisor-data.json", backoff_s=0.01)
    assert set(advisor["region"]) == {"us-east-1"} and len(advisor) == 7  # after one retried 503
    with pytest.raises(CatalogError, match="no entries"):
        fetch_aws.fetch_spot_advisor(f"{price_server.url}/spot-advisor-data.json", backoff_s=0.01)
