"""Flow `price-compare`: refresh from a small snapshot, plan with recorded numbers, publish artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.price_compare import PriceCompareParams, price_compare
from thrifty import runtime

AZURE_CSV = (
    "instance_type,vcpus,memory_gib,accelerator_name,accelerator_count,accelerator_memory_mib,region,zone,"
    "ondemand_usd_per_hour,spot_usd_per_hour\n"
    "Standard_F2s_v2,2,4,,,,eastus,,0.0846,0.0169\n"
    "Standard_D4s_v5,4,16,,,,eastus,,0.192,0.04\n"
)


def test_price_compare_plans_and_publishes(thrifty_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "azure.csv").write_text(AZURE_CSV)
    params = PriceCompareParams(model="minilm", p95_ms=50, rps=20, snapshot=str(folder), recorded=True, top=5)
    summary = price_compare(params)
    chosen = summary["chosen"]
    # only the snapshot's two Azure types (+ serverless rows) are in the registry history now;
    # F2s_v2: 1 copy x 58.8 req/s x 0.7 = 41 req/s ≥ 20 → 1 machine at $0.0846/h is the cheapest
    assert (chosen["provider"], chosen["instance_type"], chosen["option"]) == (
        "azure",
        "Standard_F2s_v2",
        "on_demand",
    )
    assert chosen["usd_per_month"] == pytest.approx(0.0846 * 730)
    stored = runtime.registry().get_plan(summary["plan_id"])
    assert stored.record["catalog"]["origin"] == "registry"
    table, markdown = _latest_artifact("price-compare-top-offers"), _latest_artifact("price-compare-decision")
    assert table.type == "table"
    rows = json.loads(str(table.data))
    assert rows[0]["instance_type"] == "Standard_F2s_v2" and len(rows) <= 5
    assert markdown.type == "markdown" and "CHOSEN" in str(markdown.data)


def _latest_artifact(key: str) -> Any:
    with get_client(sync_client=True) as client:  # closed here: no sockets left for the GC
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=1
        )
    assert found, f"no artifact {key!r}"
    return found[0]


def test_fetch_prices_raises_when_every_source_fails(
    thrifty_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a simulated outage of every provider: the task must raise so Prefect's retries kick in
    from tasks.prices import fetch_prices
    from thrifty.catalog import refresh
    from thrifty.errors import CatalogError

    def outage() -> None:
        raise CatalogError("simulated outage")

    monkeypatch.setattr(refresh, "default_fetchers", lambda settings: {"aws": outage, "azure": outage})
    with pytest.raises(CatalogError, match="every price source failed"):
        fetch_prices.fn(["aws", "azure"])
    assert fetch_prices.retries == 3
