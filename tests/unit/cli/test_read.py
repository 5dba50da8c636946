"""The read layer (issue 11 item 6): typed answers from the registry, the same ones `--json` prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from thrifty import read
from thrifty.cli import app
from thrifty.errors import NotFoundError

runner = CliRunner()


def _registry() -> Any:
    from thrifty import runtime

    return runtime.registry()


def test_deployments_carry_state_endpoint_plan_and_cost(deployed: dict[str, Any]) -> None:
    rows = {d.name: d for d in read.deployments(_registry())}
    live = rows["minilm-int8-search-blockwise"]
    assert (live.state, live.provider, live.plan_id) == ("running", "local", deployed["plan_id"])
    assert live.usd_per_month == pytest.approx(deployed["usd_per_month"])
    assert live.offer and "(spot)" in live.offer and live.revision is None
    assert rows["minilm-onnx-fp32"].usd_per_month is None  # no plan, no cost
    assert read.deployment(_registry(), live.name) == live
    assert json.loads(json.dumps(read.to_json(list(rows.values()))))[0]["name"] in rows


def test_request_stats_count_rate_last_and_percentiles(deployed: dict[str, Any]) -> None:
    registry, name = _registry(), "minilm-int8-search-blockwise"
    old = datetime.now(UTC) - timedelta(hours=2)
    registry.log_requests([{"model_name": name, "at": old, "latency_ms": 999.0}])
    stats = read.request_stats(registry, [name, "minilm-onnx-fp32"], window_s=60.0)
    mine = stats[name]
    # 21 logged, 20 of them in the last minute with latencies 1..20 ms: nearest-rank p50 = 10, p95 = 19
    assert (mine.requests, mine.requests_in_window) == (21, 20)
    assert mine.rps == pytest.approx(20 / 60)
    assert (mine.latency_ms_p50, mine.latency_ms_p95) == (10.0, 19.0)
    assert mine.last_request_at is not None and mine.last_request_at > old
    idle = stats["minilm-onnx-fp32"]
    assert (idle.requests, idle.rps, idle.latency_ms_p95, idle.last_request_at) == (0, 0.0, None, None)


def test_variants_with_verdicts_and_names_that_resolve(seeded: dict[str, Any]) -> None:
    rows = read.variants(_registry(), "minilm")
    assert [(v.variant, v.status) for v in rows] == [
        ("onnx-fp32", "accepted"), ("int8-static-qdq", "rejected"), ("int8-search-blockwise", "accepted"),
    ]  # fmt: skip
    assert rows[0].latency_ms_p50 == 16.8 and rows[0].size_mb == 91.0 and rows[0].ref == "minilm/onnx-fp32"
    assert (
        read.resolve_variant(_registry(), "minilm/int8-static-qdq").id
        == seeded["variants"]["int8-static-qdq"]
    )
    assert read.resolve_variant(_registry(), str(rows[2].id)).name == "int8-search-blockwise"
    with pytest.raises(NotFoundError, match="no variant 'int8'") as info:
        read.resolve_variant(_registry(), "minilm/int8")
    assert "onnx-fp32" in (info.value.hint or "")


def test_models_plans_and_events(deployed: dict[str, Any]) -> None:
    (summary,) = read.models(_registry())
    assert (summary.model, summary.versions, summary.format) == ("minilm", 1, "onnx")
    (plan,) = read.plans(_registry())
    assert plan.id == deployed["plan_id"] and plan.usd_per_month == pytest.approx(deployed["usd_per_month"])
    detail = read.plan(_registry(), plan.id)
    assert f"plan {plan.id} for minilm" in detail.explanation()
    (event,) = read.events(_registry(), "minilm-int8-search-blockwise")
    assert (event.kind, event.reason) == ("live", "smoke test passed")


@pytest.mark.parametrize(
    ("args", "model", "many"),
    [
        (["variants", "minilm", "--json"], read.VariantView, True),
        (["models", "list", "--json"], read.ModelSummary, True),
        (["plan", "list", "--json"], read.PlanSummary, True),
        (["events", "minilm-int8-search-blockwise", "--json"], read.EventView, True),
        (["status", "--json"], read.LocalStatus, False),
        (["deployments", "--json"], read.DeploymentView, True),
    ],
)
def test_json_output_is_the_read_models(
    deployed: dict[str, Any], args: list[str], model: Any, many: bool
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for item in data if many else [data]:
        assert set(item) == set(model.model_fields)
        model.model_validate(item)  # what an API would return parses back into the same type


def test_status_json_has_request_rate_and_p95(deployed: dict[str, Any]) -> None:
    data = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    row = next(d for d in data["deployments"] if d["name"] == "minilm-int8-search-blockwise")
    assert row["requests"] == 20 and row["latency_ms_p95"] == 19.0 and row["rps"] > 0


def test_deployments_table_shows_cost_at_80_columns(deployed: dict[str, Any]) -> None:
    result = runner.invoke(app, ["deployments"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert f"{deployed['usd_per_month']:,.2f}" in result.stdout
    assert "minilm-int8-search-blockwise" in result.stdout and "hibernated" in result.stdout
