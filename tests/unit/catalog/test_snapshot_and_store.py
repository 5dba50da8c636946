"""The normalized table, the snapshot reader (README rules), the reference table and price history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from thrifty.catalog.reference import reference_table
from thrifty.catalog.schema import COLUMNS, to_records, validate
from thrifty.catalog.serverless import serverless_table
from thrifty.catalog.snapshot import read_snapshot
from thrifty.catalog.store import load_catalog, read_prices, save_prices
from thrifty.errors import CatalogError
from thrifty.settings import Settings

T0 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def snapshot(pricing_dir: Path) -> pd.DataFrame:
    return read_snapshot(pricing_dir)


def _one(table: pd.DataFrame, **match: Any) -> pd.DataFrame:
    mask = pd.Series(True, index=table.index)
    for column, value in match.items():
        mask &= table[column] == value
    return table[mask]


@pytest.mark.parametrize(
    ("instance_type", "machine_usd", "accelerator_usd"),
    [("a2-highgpu-1g", 0.73948, 2.93391), ("g2-standard-4", 0.14679, 0.56004)],
)
def test_gcp_gpu_vm_is_machine_plus_accelerator(
    snapshot: pd.DataFrame, instance_type: str, machine_usd: float, accelerator_usd: float
) -> None:
    # the README's own check values (coroot lists the bundled prices 3.673385 and 0.706832)
    rows = _one(
        snapshot, provider="gcp", region="us-central1", instance_type=instance_type, price_model="on_demand"
    )
    assert len(rows) >= 1
    assert rows["usd_per_hour"].iloc[0] == pytest.approx(machine_usd + accelerator_usd)
    assert rows["accelerator_count"].iloc[0] == 1


def test_gcp_accelerator_only_rows_do_not_become_offers(snapshot: pd.DataFrame) -> None:
    gcp = snapshot[snapshot["provider"] == "gcp"]
    assert (gcp["instance_type"] != "").all()
    assert not gcp["instance_type"].str.startswith("tpu").any()


def test_aws_on_demand_is_us_east_1_only_and_spot_is_derived(
    snapshot: pd.DataFrame, pricing_dir: Path
) -> None:
    aws = snapshot[snapshot["provider"] == "aws"]
    assert set(aws["region"]) == {"us-east-1"}
    od = _one(aws, instance_type="m5.xlarge", price_model="on_demand")
    assert od["usd_per_hour"].iloc[0] == pytest.approx(0.192)
    assert not od["derived"].iloc[0]
    advisor = pd.read_csv(pricing_dir / "aws_spot_advisor.csv")
    entry = _one(advisor, instance_type="m5.xlarge", region="us-east-1", os="Linux").iloc[0]
    spot = _one(aws, instance_type="m5.xlarge", price_model="spot").iloc[0]
    assert spot["usd_per_hour"] == pytest.approx(0.192 * (1 - entry["savings_pct_vs_ondemand"] / 100))
    assert spot["derived"] and spot["interruption_bucket"] == entry["interruption_bucket"]
    assert "derived" in spot["source"]
    # no on-demand price (README lists p5e.48xlarge among them) → neither row exists
    assert _one(aws, instance_type="p5e.48xlarge").empty


def test_azure_rows_without_spot_have_only_on_demand(snapshot: pd.DataFrame, pricing_dir: Path) -> None:
    raw = pd.read_csv(pricing_dir / "azure.csv")
    no_spot = raw[raw["spot_usd_per_hour"].isna()].iloc[0]
    rows = _one(snapshot, provider="azure", region=no_spot["region"], instance_type=no_spot["instance_type"])
    assert list(rows["price_model"]) == ["on_demand"]


def test_snapshot_dates_and_columns(snapshot: pd.DataFrame) -> None:
    assert tuple(snapshot.columns) == COLUMNS
    assert snapshot["observed_at"].dt.tz is not None
    gcp_dates = set(snapshot.loc[snapshot["provider"] == "gcp", "observed_at"].dt.strftime("%Y-%m-%d"))
    assert gcp_dates == {"2026-05-20"}


def test_snapshot_as_of_override_and_bad_folders(tmp_path: Path) -> None:
    (tmp_path / "azure.csv").write_text(
        "instance_type,vcpus,memory_gib,accelerator_name,accelerator_count,accelerator_memory_mib,region,zone,"
        "ondemand_usd_per_hour,spot_usd_per_hour\nStandard_D2s_v5,2,8,,,,eastus,,0.096,0.02\n"
    )
    (tmp_path / "as_of.json").write_text('{"azure": "2026-09-01T00:00:00Z"}')
    table = read_snapshot(tmp_path)
    assert len(table) == 2 and set(table["observed_at"].dt.strftime("%Y-%m-%d")) == {"2026-09-01"}
    with pytest.raises(CatalogError, match="does not exist"):
        read_snapshot(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CatalogError, match="has none of"):
        read_snapshot(empty)


def _row(**extra: Any) -> dict[str, Any]:
    base = {
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": "m5.large",
        "vcpus": 2,
        "memory_gib": 8,
        "price_model": "on_demand",
        "usd_per_hour": 0.096,
        "observed_at": T0,
        "source": "test",
    }
    return base | extra


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"provider": "ibm"}, "provider outside"),
        ({"price_model": "reserved"}, "price_model outside"),
        ({"usd_per_hour": -1.0}, "missing or negative usd_per_hour"),
        ({"usd_per_hour": None}, "missing or negative usd_per_hour"),
        ({"interruption_bucket": "often"}, "interruption_bucket outside"),
        ({"price_model": "serverless", "usd_per_hour": None}, "serverless without"),
        ({"observed_at": None}, "no observed_at"),
    ],
)
def test_validate_rejects_bad_rows(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        validate(pd.DataFrame([_row(), _row(**bad)]))


def test_to_records_gives_python_types() -> None:
    record = to_records(validate(pd.DataFrame([_row()])))[0]
    assert type(record["usd_per_hour"]) is float and type(record["vcpus"]) is float
    assert record["usd_per_gb_second"] is None and type(record["derived"]) is bool
    assert record["observed_at"] == T0


def test_reference_table_is_small_labelled_and_dated() -> None:
    table = reference_table()
    assert 20 <= len(table) <= 100
    assert set(table["provider"]) == {"aws", "gcp", "azure"}
    assert table["source"].str.startswith("reference list price (as_of ").all()
    assert (table["accelerator_count"] > 0).any()  # GPU types too
    assert table.groupby("provider")["region"].nunique().min() >= 1


def test_serverless_rows_cover_four_services() -> None:
    table = serverless_table()
    assert set(table["instance_type"].str.split("-").str[0]) == {"lambda", "cloud", "functions", "container"}
    apps = table[table["instance_type"] == "container-apps-1vcpu-2gib"].iloc[0]
    # $0.000024 per vCPU-second + 2 GiB x $0.000003 per GiB-second, folded into GiB-seconds
    assert apps["usd_per_gb_second"] == pytest.approx((0.000024 + 2 * 0.000003) / 2)
    lambda_row = table[table["instance_type"] == "lambda-1769mb"].iloc[0]
    assert lambda_row["usd_per_gb_second"] == pytest.approx(0.0000166667)
    assert lambda_row["usd_per_million_requests"] == pytest.approx(0.20)


def test_history_is_appended_and_read_as_of(registry: Any) -> None:
    old = validate(pd.DataFrame([_row(usd_per_hour=0.10, observed_at=T0)]))
    new = validate(pd.DataFrame([_row(usd_per_hour=0.12, observed_at=T0 + timedelta(days=2))]))
    assert save_prices(registry, old) == 1
    assert save_prices(registry, new) == 1
    assert registry.count_price_quotes() == 2  # never overwritten
    then = read_prices(registry, as_of=T0 + timedelta(days=1))
    assert list(then["usd_per_hour"]) == [pytest.approx(0.10)]
    now = read_prices(registry)
    assert list(now["usd_per_hour"]) == [pytest.approx(0.12)]
    assert now["observed_at"].iloc[0] == T0 + timedelta(days=2)


def test_bad_table_writes_nothing(registry: Any) -> None:
    with pytest.raises(CatalogError):
        save_prices(registry, pd.DataFrame([_row(), _row(usd_per_hour=-5)]))
    assert registry.count_price_quotes() == 0


def test_load_catalog_prefers_registry_then_snapshot_then_reference(registry: Any, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert load_catalog(settings, registry).origin == "reference"
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "azure.csv").write_text(
        "instance_type,vcpus,memory_gib,accelerator_name,accelerator_count,accelerator_memory_mib,region,zone,"
        "ondemand_usd_per_hour,spot_usd_per_hour\nStandard_D2s_v5,2,8,,,,eastus,,0.096,\n"
    )
    from_snapshot = load_catalog(Settings(home=tmp_path, price_snapshot=tmp_path / "snap"), registry)
    assert from_snapshot.origin.startswith("snapshot:")
    assert (from_snapshot.table["price_model"] == "serverless").any()  # serverless rows added
    save_prices(registry, pd.DataFrame([_row()]))
    from_registry = load_catalog(Settings(home=tmp_path, price_snapshot=tmp_path / "snap"), registry)
    assert from_registry.origin == "registry"
    assert set(from_registry.table["instance_type"]) >= {"m5.large"}


def test_same_timestamp_keeps_the_last_recorded_row(registry: Any) -> None:
    save_prices(registry, pd.DataFrame([_row(usd_per_hour=0.10)]))
    save_prices(registry, pd.DataFrame([_row(usd_per_hour=0.11)]))  # same key, same observed_at
    rows = read_prices(registry)
    assert list(rows["usd_per_hour"]) == [pytest.approx(0.11)]
    assert len(registry.latest_price_quotes()) == 1
