from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from thrifty.cli import app
from thrifty.errors import ConfigError
from thrifty.policies import FixedKeepAlive, get_policy
from thrifty.policies.forecast import AR1Forecaster


def test_get_policy_by_name() -> None:
    assert get_policy("fixed-60") == FixedKeepAlive(60)
    assert get_policy("hybrid-histogram", {"range_min": 120}).settings()["range_min"] == 120
    with pytest.raises(ConfigError, match="unknown policy 'nope'") as info:
        get_policy("nope")
    assert "thrifty-cost-aware" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="bad settings"):
        get_policy("fixed", {"minutes": 3})


def test_ar1_forecast_follows_a_trend() -> None:
    forecaster = AR1Forecaster.empty(2)
    for value in (10.0, 20.0, 30.0, 40.0):
        forecaster.update(np.array([0]), np.array([value]))
    forecaster.update(np.array([1]), np.array([7.0]))
    predicted = forecaster.forecast(np.array([0, 1]))
    # x_k = 10 + x_{k-1} fits exactly, but forecasts stay within what was seen: 40
    assert predicted[0] == pytest.approx(40.0)
    assert predicted[1] == pytest.approx(7.0)


def write_trace(folder: Path) -> None:
    minutes = [f"minute_{i}" for i in range(1, 61)]
    rows = ["HashFunction,HashApp,HashOwner," + ",".join(minutes)]
    for name, every in (("a", 7), ("b", 1), ("c", 25)):
        counts = [1 if i % every == 0 else 0 for i in range(60)]
        rows.append(f"{name},{name},{name}," + ",".join(map(str, counts)))
    (folder / "invocations_per_minute.csv").write_text("\n".join(rows) + "\n")


def test_simulate_command_json_and_png(tmp_path: Path) -> None:
    write_trace(tmp_path)
    png = tmp_path / "curve.png"
    result = CliRunner().invoke(
        app,
        ["simulate", "--trace", str(tmp_path), "--policy", "hybrid-histogram", "--png", str(png), "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    names = [row["policy"] for row in data["policies"]]
    assert names == [
        "fixed-5",
        "fixed-10",
        "fixed-20",
        "fixed-30",
        "fixed-60",
        "fixed-120",
        "fixed-240",
        "hybrid-histogram",
    ]
    assert data["policies"][1]["wasted_memory_pct"] == pytest.approx(100.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_policies_command_lists_settings() -> None:
    result = CliRunner().invoke(app, ["policies", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["hybrid-histogram"]["settings"]["tail_percentile"] == 99.0
    assert rows["thrifty-cost-aware"]["settings"]["budget_keepalive_min"] == 10.0
