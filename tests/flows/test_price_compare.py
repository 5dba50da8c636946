"""Flow `price-compare`: refresh from a small snapshot, plan with recorded numbers, publish artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from flows.price_compare import PriceCompareParams, price_compare
from thrifty import runtime

AZURE_CSV = (
    "instance_type,vcpus,memory_gib,accelerator_name,accelerator_count,accelerator_memory_mib,region,zone,"
    "ondemand_usd_per_hour,spot_usd_per_hour\n"
    "Standard_F2s_v2,2,4,,,,eastus,,0.0846,0.0169\n"
    "Standard_D4s_v5,4,16,,,,eastus,,0.192,0.04\n"
)


@pytest.mark.slow
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
    table = Artifact.get("price-compare-top-offers")
    assert table is not None and table.type == "table"
    rows = json.loads(str(table.data))
    assert rows[0]["instance_type"] == "Standard_F2s_v2" and len(rows) <= 5
    markdown = Artifact.get("price-compare-decision")
    assert markdown is not None and "CHOSEN" in str(markdown.data)
