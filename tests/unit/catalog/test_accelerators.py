"""Accelerator names across clouds and GCP's N1 + GPU pairings, checked on each cloud's real rows
(../shared/data/pricing) with the raw CSVs as the independent oracle."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from thrifty.catalog import fetch_aws, fetch_azure, fetch_gcp
from thrifty.catalog.accelerators import (
    AWS_FAMILIES,
    CANONICAL,
    N1_GPU_HOST,
    aws_accelerator,
    canonical_accelerator,
    n1_pairing_allowed,
    split_gcp_type,
)
from thrifty.catalog.query import select_offers
from thrifty.catalog.reference import reference_table
from thrifty.catalog.schema import validate
from thrifty.catalog.snapshot import read_snapshot
from thrifty.settings import Settings

from .conftest import PriceServer, Reply


@pytest.fixture(scope="module")
def snapshot(pricing_dir: Path) -> pd.DataFrame:
    return read_snapshot(pricing_dir)


@pytest.fixture(scope="module")
def raw_gcp(pricing_dir: Path) -> pd.DataFrame:
    return pd.read_csv(pricing_dir / "gcp.csv", dtype={"instance_type": str, "zone": str}).fillna(
        {"instance_type": "", "accelerator_name": ""}
    )


@pytest.mark.parametrize(
    ("spelling", "memory_mib", "canonical"),
    [
        ("t4", None, "T4"),  # AWS label
        ("T4", None, "T4"),  # GCP / Azure snapshot
        ("Tesla T4", None, "T4"),  # nvidia-smi
        ("nvidia-tesla-t4", None, "T4"),  # GCP accelerator type
        ("t4g", None, "T4G"),  # g5g's Arm-hosted T4G is another product
        ("a10g", None, "A10G"),
        ("A10", None, "A10"),  # Azure's A10 is not AWS's A10G
        ("NVIDIA A10G", None, "A10G"),
        ("A100", None, "A100-40GB"),  # GCP a2-highgpu / Azure ND96asr_v4: 40 GB
        ("a100", 40960, "A100-40GB"),  # AWS p4d
        ("a100", 81920, "A100-80GB"),  # AWS p4de: same label, more memory
        ("NVIDIA A100-SXM4-40GB", None, "A100-40GB"),
        ("NVIDIA A100 80GB PCIe", None, "A100-80GB"),
        ("nvidia-a100-80gb", None, "A100-80GB"),
        ("H100-MEGA", None, "H100"),
        ("NVIDIA H100 80GB HBM3", None, "H100"),
        ("l4", None, "L4"),
        ("nvidia-l4", None, "L4"),
        ("l40s", None, "L40S"),
        ("v100", 32768, "V100-32GB"),  # AWS p3dn
        ("Tesla V100-SXM2-16GB", None, "V100"),
        ("P4", None, "P4"),
        ("cpu", None, ""),
        ("", None, ""),
        ("rtx-pro-server-6000", None, "RTX-PRO-6000"),
        ("some-new-chip", None, "SOME-NEW-CHIP"),  # unknown: kept, case-insensitive
    ],
)
def test_every_spelling_has_one_name(spelling: str, memory_mib: float | None, canonical: str) -> None:
    assert canonical_accelerator(spelling, memory_mib) == canonical


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_names_are_fixed_points(name: str) -> None:
    assert canonical_accelerator(name) == name
    assert canonical_accelerator(name.lower()) == name


def test_each_clouds_real_rows_use_canonical_names(snapshot: pd.DataFrame, pricing_dir: Path) -> None:
    for provider in ("aws", "gcp", "azure"):
        names = set(snapshot.loc[snapshot["provider"] == provider, "accelerator_name"])
        assert names - {""} <= set(CANONICAL), provider
    # the same row, raw vs read: AWS's lower-case labels (with GPU memory) became canonical
    aws = pd.read_csv(pricing_dir / "aws.csv").fillna({"accelerator_name": ""})
    aws = aws[aws["ondemand_usd_per_hour"].notna()]
    read = snapshot[(snapshot["provider"] == "aws") & (snapshot["price_model"] == "on_demand")]
    got = dict(zip(read["instance_type"], read["accelerator_name"], strict=True))
    for row in aws.itertuples():
        assert got[row.instance_type] == canonical_accelerator(
            row.accelerator_name, row.accelerator_memory_mib
        )
    assert got["g4dn.xlarge"] == "T4" and got["p4de.24xlarge"] == "A100-80GB"


def test_a_t4_answer_holds_all_three_clouds(snapshot: pd.DataFrame) -> None:
    # before: AWS said "t4", so a T4 query found GCP and Azure only
    t4 = select_offers(snapshot, accelerator="t4")
    assert set(t4["provider"]) == {"aws", "gcp", "azure"}
    assert {"g4dn.xlarge", "Standard_NC4as_T4_v3", "n1-standard-4+T4x1"} <= set(t4["instance_type"])
    ref = select_offers(reference_table(), accelerator="Tesla T4")
    assert set(ref["provider"]) == {"aws", "gcp", "azure"}


def test_aws_family_table_agrees_with_the_snapshot_labels(pricing_dir: Path) -> None:
    # the live Price List does not name GPUs; the family table must say what Karpenter's labels say
    aws = pd.read_csv(pricing_dir / "aws.csv").fillna({"accelerator_name": ""})
    for row in aws.itertuples():
        expected = canonical_accelerator(row.accelerator_name, row.accelerator_memory_mib)
        assert aws_accelerator(row.instance_type) == expected, row.instance_type
    assert set(AWS_FAMILIES.values()) <= set(CANONICAL)


def test_validate_makes_stored_spellings_canonical() -> None:
    row = {
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": "g4dn.xlarge",
        "vcpus": 4,
        "memory_gib": 16,
    }
    row |= {
        "accelerator_name": "t4",
        "accelerator_count": 1,
        "price_model": "on_demand",
        "usd_per_hour": 0.526,
    }
    row |= {"observed_at": "2026-07-20T00:00:00Z", "source": "a row stored before names were canonical"}
    assert list(validate(pd.DataFrame([row]))["accelerator_name"]) == ["T4"]


# -- GCP: N1 hosts with attached GPUs ------------------------------------------------------------


def _price(raw: pd.DataFrame, zone: str, instance_type: str, name: str = "", count: float = 0) -> pd.Series:
    rows = raw[(raw["zone"] == zone) & (raw["instance_type"] == instance_type)]
    if name:
        rows = rows[(rows["accelerator_name"] == name) & (rows["accelerator_count"] == count)]
    return rows[["ondemand_usd_per_hour", "spot_usd_per_hour"]].iloc[0]


def test_highmem_host_with_a_t4_is_priced_from_its_rows(
    snapshot: pd.DataFrame, raw_gcp: pd.DataFrame
) -> None:
    zone = "us-central1-a"
    host, t4 = _price(raw_gcp, zone, "n1-highmem-4"), _price(raw_gcp, zone, "", "T4", 1)
    rows = snapshot[(snapshot["zone"] == zone) & (snapshot["instance_type"] == "n1-highmem-4+T4x1")]
    got = dict(zip(rows["price_model"], rows["usd_per_hour"], strict=True))
    assert got["on_demand"] == pytest.approx(host["ondemand_usd_per_hour"] + t4["ondemand_usd_per_hour"])
    assert got["spot"] == pytest.approx(host["spot_usd_per_hour"] + t4["spot_usd_per_hour"])
    assert set(rows["accelerator_name"]) == {"T4"} and set(rows["memory_gib"]) == {26.0}


def test_every_pairing_is_one_gcp_sells(snapshot: pd.DataFrame, raw_gcp: pd.DataFrame) -> None:
    paired = snapshot[snapshot["instance_type"].str.contains("+", regex=False)]
    sold = raw_gcp[raw_gcp["instance_type"] == ""]
    sold_keys = set(zip(sold["zone"], sold["accelerator_name"], sold["accelerator_count"], strict=True))
    for row in paired.drop_duplicates(["zone", "instance_type"]).itertuples():
        machine, name, count = split_gcp_type(row.instance_type)
        assert N1_GPU_HOST.match(machine), row.instance_type
        assert n1_pairing_allowed(name, count, row.vcpus, row.memory_gib), row.instance_type
        assert (row.zone, name, float(count)) in sold_keys, (row.zone, row.instance_type)
    # V100: 1 GPU allows ≤ 12 vCPUs / 78 GB, 2 GPUs ≤ 24 vCPUs / 156 GB (GCP's N1 limits)
    types = set(paired["instance_type"])
    assert "n1-standard-16+V100x1" not in types and "n1-standard-16+V100x2" in types
    assert not any(t.startswith(("n1-megamem", "n1-ultramem", "n1-340", "n1-356")) for t in types)


def test_zones_without_the_gpu_get_no_pairing(snapshot: pd.DataFrame, raw_gcp: pd.DataFrame) -> None:
    hosts = set(raw_gcp.loc[raw_gcp["instance_type"] == "n1-standard-4", "zone"])
    with_t4 = set(raw_gcp.loc[raw_gcp["accelerator_name"] == "T4", "zone"])
    without = sorted(hosts - with_t4)
    assert without, "the snapshot has N1 zones without T4s"
    rows = snapshot[snapshot["zone"].isin(without) & (snapshot["accelerator_name"] == "T4")]
    assert rows.empty


def test_a_highmem_host_beats_the_old_standard_8_pairing(snapshot: pd.DataFrame) -> None:
    # a model needing ≥ 26 GiB of host memory: before, only n1-standard-8+T4x1 (30 GiB) had it
    gcp = snapshot[(snapshot["provider"] == "gcp") & (snapshot["region"] == "us-central1")]
    t4 = gcp[(gcp["accelerator_name"] == "T4") & (gcp["price_model"] == "on_demand")]
    roomy = t4[(t4["memory_gib"] >= 26) & (t4["accelerator_count"] == 1)].sort_values("usd_per_hour")
    assert roomy.iloc[0]["instance_type"] == "n1-highmem-4+T4x1"
    old = t4.loc[t4["instance_type"] == "n1-standard-8+T4x1", "usd_per_hour"].min()
    assert roomy.iloc[0]["usd_per_hour"] < old


def test_bundled_gpu_types_keep_their_priced_apart_variants(
    snapshot: pd.DataFrame, raw_gcp: pd.DataFrame
) -> None:
    # a3-megagpu (H100-MEGA rows) and a3-highgpu (H100 rows) are both H100 now, at their own prices
    hosts = set(raw_gcp.loc[raw_gcp["instance_type"] == "a3-megagpu-8g", "zone"])
    gpus = raw_gcp[(raw_gcp["instance_type"] == "") & (raw_gcp["accelerator_name"] == "H100-MEGA")]
    priced = hosts & set(gpus.loc[gpus["accelerator_count"] == 8, "zone"])
    # a zone that lists the host but not its GPUs' price is no offer (not a host-only price)
    unpriced = snapshot[
        snapshot["zone"].isin(hosts - priced) & (snapshot["instance_type"] == "a3-megagpu-8g")
    ]
    assert priced and unpriced.empty
    zone = sorted(priced)[0]  # sorted: a set's order changes with PYTHONHASHSEED from run to run
    mega = _price(raw_gcp, zone, "a3-megagpu-8g")["ondemand_usd_per_hour"]
    mega += _price(raw_gcp, zone, "", "H100-MEGA", 8)["ondemand_usd_per_hour"]
    row = snapshot[(snapshot["zone"] == zone) & (snapshot["instance_type"] == "a3-megagpu-8g")]
    row = row[row["price_model"] == "on_demand"].iloc[0]
    assert (row["accelerator_name"], row["usd_per_hour"]) == ("H100", pytest.approx(mega))


# -- live fetchers -------------------------------------------------------------------------------


def test_gcp_fetcher_pairs_n1_hosts_with_gpus() -> None:
    units = [
        {"kind": "core", "name": "n1", "price_model": "on_demand", "region": "us-central1", "usd": 0.031611},
        {"kind": "ram", "name": "n1", "price_model": "on_demand", "region": "us-central1", "usd": 0.004237},
        {"kind": "gpu", "name": "T4", "price_model": "on_demand", "region": "us-central1", "usd": 0.35},
        {"kind": "gpu", "name": "A100", "price_model": "on_demand", "region": "us-central1", "usd": 2.93},
    ]
    sku = {
        "category": {"resourceFamily": "Compute", "usageType": "OnDemand"},
        "description": "Nvidia Tesla T4 GPU running in Americas",
        "serviceRegions": ["us-central1"],
        "pricingInfo": [
            {"pricingExpression": {"tieredRates": [{"unitPrice": {"units": "0", "nanos": 350000000}}]}}
        ],
    }
    assert fetch_gcp.parse_sku(sku)[0]["name"] == "T4"
    table = fetch_gcp.compose_prices(units, pd.Timestamp("2026-05-20", tz="UTC").to_pydatetime(), "test")
    prices = dict(zip(table["instance_type"], table["usd_per_hour"], strict=True))
    # n1-highmem-4 = 4 x core + 26 GiB x ram, + one T4
    assert prices["n1-highmem-4+T4x1"] == pytest.approx(4 * 0.031611 + 26 * 0.004237 + 0.35)
    assert "n1-highmem-32+T4x1" in prices and "n1-standard-32+T4x1" in prices  # ≤ 48 vCPUs, 312 GB
    assert not any("+A100" in t for t in prices)  # A100s come only bundled (a2), never on N1
    names = set(table.loc[table["instance_type"].str.contains("+", regex=False), "accelerator_name"])
    assert names == {"T4"}


def test_aws_fetcher_names_gpus_from_the_family(samples: Path) -> None:
    item: dict[str, Any] = json.loads(
        (samples / "aws_pricing_get_products_m5_large_pricelist_item.json").read_text()
    )
    gpu = copy.deepcopy(item)
    gpu["product"]["attributes"] |= {
        "instanceType": "g4dn.xlarge",
        "vcpu": "4",
        "memory": "16 GiB",
        "gpu": "1",
    }
    row = fetch_aws.parse_price_list_item(json.dumps(gpu), "us-east-1")
    assert row is not None and (row["accelerator_name"], row["accelerator_count"]) == ("T4", 1.0)
    cpu = fetch_aws.parse_price_list_item(item, "us-east-1")
    assert cpu is not None and cpu["accelerator_name"] == ""
    entry = {
        "AvailabilityZone": "us-east-1a",
        "InstanceType": "g5.xlarge",
        "ProductDescription": "Linux/UNIX",
    }
    entry |= {"SpotPrice": "0.40", "Timestamp": "2026-07-20T00:00:00Z"}
    spot = fetch_aws.parse_spot_history([entry], "us-east-1")  # no shapes: the name still comes through
    assert list(spot["accelerator_name"]) == ["A10G"]


@pytest.mark.parametrize("with_snapshot", [True, False])
def test_live_azure_gpu_sizes_get_their_shape_and_accelerator(
    price_server: PriceServer, samples: Path, pricing_dir: Path, tmp_path: Path, with_snapshot: bool
) -> None:
    # the Retail Prices API names the size only; without a shape a GPU size could never be planned
    page = json.loads((samples / "azure_retail_prices_response_excerpt.json").read_text())
    item = page["Items"][0] | {"type": "Consumption", "productName": "Virtual Machines NCasT4_v3 Series"}
    item |= {"armRegionName": "eastus", "skuName": "NC4as T4 v3", "armSkuName": "Standard_NC4as_T4_v3"}
    item |= {"retailPrice": 0.526, "unitOfMeasure": "1 Hour"}
    price_server.queue(Reply(page | {"Items": [item], "NextPageLink": None}))
    settings = Settings(home=tmp_path, price_snapshot=pricing_dir if with_snapshot else None)
    url = f"{price_server.url}/api/retail/prices"
    table = fetch_azure.fetch_azure(
        ("eastus",), base_url=url, shapes=fetch_azure.known_shapes(settings), backoff_s=0
    )
    row = table.iloc[0]
    assert (row["instance_type"], row["accelerator_name"], row["accelerator_count"]) == (
        "Standard_NC4as_T4_v3", "T4", 1.0)  # fmt: skip
    assert (row["vcpus"], row["memory_gib"]) == (4.0, 28.0)
