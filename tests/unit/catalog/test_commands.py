"""`thrifty prices show|refresh` through the real CLI app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from thrifty.cli import app

runner = CliRunner()

AZURE_CSV = (
    "instance_type,vcpus,memory_gib,accelerator_name,accelerator_count,accelerator_memory_mib,region,zone,"
    "ondemand_usd_per_hour,spot_usd_per_hour\n"
    "Standard_D2s_v5,2,8,,,,eastus,,0.096,0.02\n"
    "Standard_D4s_v5,4,16,,,,eastus,,0.192,0.04\n"
)


def test_prices_show_cheapest_json_from_the_reference_table(thrifty_home: Path) -> None:
    result = runner.invoke(
        app, ["prices", "show", "--cheapest", "--vcpus", "4", "--provider", "aws", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["origin"] == "reference"
    prices = [row["usd_per_hour"] for row in payload["rows"]]
    assert prices == sorted(prices) and prices
    assert {row["provider"] for row in payload["rows"]} == {"aws"}
    assert {row["vcpus"] for row in payload["rows"]} == {4.0}


def test_prices_refresh_from_a_snapshot_then_show_reads_history(thrifty_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "azure.csv").write_text(AZURE_CSV)
    result = runner.invoke(app, ["prices", "refresh", "--snapshot", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)["written"]
    assert written[f"snapshot:{folder}"] == 4 and written["serverless"] > 0
    shown = runner.invoke(app, ["prices", "show", "--provider", "azure", "--price-model", "spot", "--json"])
    payload = json.loads(shown.stdout)
    assert payload["origin"] == "registry"
    assert sorted(row["usd_per_hour"] for row in payload["rows"]) == [0.02, 0.04]


def test_prices_show_table_for_people(thrifty_home: Path) -> None:
    result = runner.invoke(app, ["prices", "show", "--limit", "3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "reference list prices" in result.output


def test_prices_show_one_accelerator_in_any_spelling(thrifty_home: Path) -> None:
    result = runner.invoke(app, ["prices", "show", "--accelerator", "tesla-t4", "--limit", "50", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert {row["accelerator_name"] for row in rows} == {"T4"}
    assert {row["provider"] for row in rows} == {"aws", "gcp", "azure"}  # g4dn, NC4as_T4_v3, N1 + T4
