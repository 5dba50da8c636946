"""`thrifty prices refresh` with the default live fetchers, pointed at a local replay server and moto."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thrifty.cli import app

from .conftest import PriceServer, Reply

runner = CliRunner()


def _azure_page(samples: Path, region: str, price: float) -> dict[str, Any]:
    page = json.loads((samples / "azure_retail_prices_response_excerpt.json").read_text())
    item = copy.deepcopy(page["Items"][0])
    item |= {
        "type": "Consumption",
        "productName": "Virtual Machines Dsv5 Series",
        "skuName": "D2s v5",
        "armSkuName": "Standard_D2s_v5",
        "armRegionName": region,
        "retailPrice": price,
    }
    return page | {"Items": [item], "NextPageLink": None}


def _gcp_page(samples: Path) -> dict[str, Any]:
    template = json.loads((samples / "gcp_cloudbilling_skus_list_one_sku.json").read_text())["skus"][0]
    skus = []
    for description, nanos in (("N2 Instance Core running in Americas", 31_611_000), ("N2 Instance Ram running in Americas", 4_237_000)):  # fmt: skip
        sku = copy.deepcopy(template)
        sku["description"] = description
        sku["category"] = {"resourceFamily": "Compute", "usageType": "OnDemand"}
        sku["serviceRegions"] = ["us-central1"]
        sku["pricingInfo"][0]["pricingExpression"]["tieredRates"] = [
            {"unitPrice": {"units": "0", "nanos": nanos}}
        ]
        skus.append(sku)
    return {"skus": skus}


@pytest.mark.slow  # ~10 s: moto answers spot history for every us-east-1 instance type
def test_refresh_all_providers_through_the_cli(
    thrifty_home: Path,
    price_server: PriceServer,
    moto_server: str,
    samples: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls = {
        "aws_pricing": price_server.url,
        "aws_ec2": moto_server,
        "spot_advisor": f"{price_server.url}/spot-advisor-data.json",
        "azure_prices": f"{price_server.url}/api/retail/prices",
        "gcp_billing": price_server.url,
    }
    monkeypatch.setenv("THRIFTY_PRICE_API_URLS", json.dumps(urls))
    monkeypatch.setenv("THRIFTY_GCP_API_KEY", "test-key")
    item = (samples / "aws_pricing_get_products_m5_large_pricelist_item.json").read_text()
    price_server.queue(
        Reply(json.loads((samples / "aws_spot_advisor_data_excerpt.json").read_text())),  # aws: advisor feed
        Reply({"FormatVersion": "aws_v1", "PriceList": [json.dumps(json.loads(item))]}),  # aws: get_products
        Reply(_azure_page(samples, "eastus", 0.096)),
        Reply(_azure_page(samples, "westeurope", 0.11)),
        Reply(_gcp_page(samples)),
    )
    result = runner.invoke(app, ["prices", "refresh", "--providers", "aws,azure,gcp", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["failed"] == {}
    assert report["written"]["azure"] == 2 and report["written"]["gcp"] > 0 and report["written"]["aws"] > 1
    shown = runner.invoke(
        app, ["prices", "show", "--provider", "aws", "--vcpus", "2", "--limit", "500", "--json"]
    )
    rows = json.loads(shown.stdout)["rows"]
    spot = [r for r in rows if r["instance_type"] == "m5.large" and r["price_model"] == "spot"]
    on_demand = [r for r in rows if r["instance_type"] == "m5.large" and r["price_model"] == "on_demand"]
    assert (
        on_demand[0]["usd_per_hour"] == 0.096 and on_demand[0]["source"] == "AWS Price List API get_products"
    )
    assert spot and {r["interruption_bucket"] for r in spot} == {"15-20%"}  # bucket from the advisor feed
    assert all(r["zone"].startswith("us-east-1") for r in spot)  # per-zone spot history (moto)


def test_refresh_keeps_going_when_one_provider_fails(
    thrifty_home: Path, price_server: PriceServer, samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THRIFTY_PRICE_API_URLS", json.dumps({"azure_prices": price_server.url}))
    monkeypatch.delenv("THRIFTY_GCP_API_KEY", raising=False)
    price_server.queue(
        Reply(_azure_page(samples, "eastus", 0.096)), Reply(_azure_page(samples, "westeurope", 0.11))
    )
    result = runner.invoke(app, ["prices", "refresh", "--providers", "azure,gcp", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"]["azure"] == 2
    assert "no API key" in report["failed"]["gcp"]  # the others still wrote their prices
