"""Transfer in the spend ledger: response bytes × the cloud's egress $/GiB past its free allowance,
and the plan's one-time artifact copy, on a real registry and a simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.monitor.fleet import NAME, T0, make_fleet, requests
from thrifty import read
from thrifty.artifacts.transfer import EGRESS_FREE_GIB_PER_MONTH, EGRESS_USD_PER_GB
from thrifty.monitor.egress import egress_price
from thrifty.monitor.ledger import month_end, month_start
from thrifty.monitor.rollup import roll_up
from thrifty.registry import fleet

GIB = 2**30
NOW = T0 + timedelta(hours=2, minutes=30)
AWS_RATE, AWS_FREE_GIB = EGRESS_USD_PER_GB["aws"], EGRESS_FREE_GIB_PER_MONTH["aws"]


def test_egress_prices_come_from_the_planners_rate_table() -> None:
    for cloud in ("aws", "gcp", "azure"):
        price = egress_price(cloud)
        assert price is not None and price.usd_per_gib == EGRESS_USD_PER_GB[cloud]
        assert price.free_gib_per_month == EGRESS_FREE_GIB_PER_MONTH[cloud]
    assert EGRESS_FREE_GIB_PER_MONTH == {"aws": 100.0, "gcp": 0.0, "azure": 100.0}
    assert egress_price("local") is None and egress_price(None) is None


def _sized(at: Any, sizes: list[int], name: str = NAME) -> list[dict[str, Any]]:
    rows = requests(at, [20.0] * len(sizes))
    return [
        row | {"model_name": name, "request_bytes": 300, "response_bytes": size}
        for row, size in zip(rows, sizes, strict=True)
    ]


def _bulk_deployment(registry: Any, sent_gib: float) -> None:
    """Another deployment on the same aws plan that sent ``sent_gib`` earlier this month."""
    plan_id = registry.get_deployment(NAME).plan_id
    registry.upsert_deployment("bulk", provider="local", plan_id=plan_id, state="running", replicas=1)
    registry.log_requests_bulk(_sized(T0 - timedelta(days=2), [int(sent_gib * GIB)], name="bulk"))


def test_egress_past_the_cloud_allowance_is_billed_the_same_from_the_ledger_and_on_the_spot(
    registry: Any,
) -> None:
    make_fleet(registry)
    _bulk_deployment(registry, AWS_FREE_GIB - 0.5)  # half a GiB of the allowance is left
    # minilm-prod sends 0.25 GiB in the first hour and 0.75 GiB in the second: 1 GiB in all
    registry.log_requests_bulk(_sized(T0 + timedelta(minutes=5), [GIB // 8] * 2))
    registry.log_requests_bulk(_sized(T0 + timedelta(minutes=65), [GIB // 4] * 3))
    by_hand = (1.0 - 0.5) * AWS_RATE  # the half GiB past the allowance, at $0.09/GiB
    before = read.costs(registry, NAME, now=NOW).deployments[0]
    assert before.egress_gib == pytest.approx(1.0)
    assert before.egress_usd == pytest.approx(by_hand)
    assert before.egress_usd_saved == pytest.approx(0.5 * AWS_RATE)
    roll_up(registry, now=NOW)
    after = read.costs(registry, NAME, now=NOW).deployments[0]
    assert (after.egress_gib, after.transfer_usd) == pytest.approx((1.0, by_hand))
    assert after.total_usd == pytest.approx(after.compute_usd + after.storage_usd + by_hand)
    rows = [e for e in fleet.spend(registry, NAME, T0, NOW) if e.kind == "transfer"]
    # the first hour's 0.25 GiB fit in the allowance ($0); the second hour's 0.75 GiB: 0.5 billed
    assert [e.quantity / GIB for e in rows] == [0.25, 0.75]
    assert [e.usd for e in rows] == pytest.approx([0.0, by_hand])
    minutes = fleet.rollups(registry, NAME, 60, T0, NOW)
    assert sum(m.bytes_out or 0 for m in minutes) == GIB and sum(m.bytes_in or 0 for m in minutes) == 5 * 300


def test_the_allowance_is_shared_by_the_deployments_on_one_cloud_in_the_order_sent(registry: Any) -> None:
    make_fleet(registry)
    _bulk_deployment(registry, 0.0)  # registered, nothing sent before
    registry.log_requests_bulk(_sized(T0 + timedelta(minutes=10), [60 * GIB]))  # minilm-prod first
    registry.log_requests_bulk(_sized(T0 + timedelta(minutes=11), [60 * GIB], name="bulk"))
    for rolled in (False, True):
        if rolled:
            roll_up(registry, now=NOW)
        views = {v.deployment: v for v in read.costs(registry, now=NOW).deployments}
        # 120 GiB together, 100 free: minilm-prod's 60 GiB came first (free), then bulk's 40 free + 20 billed
        assert views[NAME].egress_usd == 0.0 and views[NAME].egress_usd_saved == pytest.approx(60 * AWS_RATE)
        assert views["bulk"].egress_usd == pytest.approx(20 * AWS_RATE)


def test_the_plans_artifact_copy_is_paid_once_in_the_deploy_hour_and_not_run_forward(registry: Any) -> None:
    make_fleet(registry)
    plan = registry.get_plan(registry.get_deployment(NAME).plan_id)
    record = dict(plan.record)
    record["chosen"] = dict(record["chosen"]) | {"artifact_transfer_usd": 0.0009}
    record["artifact_transfer"] = {"source_cloud": "gcp", "variant_size_bytes": {"int8": 10_000_000}}
    with registry.session() as s:
        s.get(type(plan), plan.id).record = record
    before = read.costs(registry, NAME, now=NOW).deployments[0]
    roll_up(registry, now=NOW)
    roll_up(registry, now=NOW)  # a re-run changes nothing
    after = read.costs(registry, NAME, now=NOW).deployments[0]
    for view in (before, after):
        assert view.artifact_copy_usd == pytest.approx(0.0009) and view.egress_usd == 0.0
        assert view.transfer_usd == pytest.approx(0.0009)
        hours_left = (month_end(NOW) - NOW).total_seconds() / 3600
        assert view.run_rate_usd_per_hour == pytest.approx((view.total_usd - 0.0009) / 2.5)
        assert view.forecast_month_usd == pytest.approx(
            view.total_usd + view.run_rate_usd_per_hour * hours_left
        )
    copies = [e for e in fleet.spend(registry, NAME, T0, NOW) if e.kind == "artifact_copy"]
    assert [(e.hour_start, e.quantity, e.usd) for e in copies] == [(T0, 10_000_000.0, 0.0009)]


def test_a_deployment_without_traffic_pays_no_transfer(registry: Any) -> None:
    make_fleet(registry)
    roll_up(registry, now=NOW)
    view = read.costs(registry, NAME, now=NOW).deployments[0]
    assert view.replica_hours > 0  # it ran
    assert (view.transfer_usd, view.egress_usd, view.egress_gib, view.artifact_copy_usd) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert not [e for e in fleet.spend(registry, NAME, T0, NOW) if e.kind in ("transfer", "artifact_copy")]


def test_costs_name_prints_a_transfer_line(thrifty_home: Any) -> None:
    from thrifty import runtime
    from thrifty.cli import app

    registry = runtime.registry()
    make_fleet(registry)
    now = datetime.now(UTC)  # `thrifty costs` reads this month on the real clock
    registry.log_requests_bulk(_sized(max(month_start(now), now - timedelta(minutes=2)), [int(100.5 * GIB)]))
    shown = CliRunner().invoke(app, ["costs", NAME], env={"COLUMNS": "220"})
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.output.splitlines() if x.startswith("transfer $"))
    assert "100.500000 GiB out" in line and "$0.09/GiB" in line and "first 100 GiB/month free" in line
    assert f"${0.5 * AWS_RATE:,.6f}" in line


def test_the_forecast_runs_the_bytes_forward_past_what_is_left_of_the_allowance(registry: Any) -> None:
    make_fleet(registry)
    registry.log_requests_bulk(_sized(T0 + timedelta(minutes=30), [5 * GIB, 5 * GIB]))  # 10 GiB in 2.5 h
    view = read.costs(registry, NAME, now=NOW).deployments[0]
    assert view.egress_usd == 0.0  # 10 of the 100 free GiB used so far
    hours_left = (month_end(NOW) - NOW).total_seconds() / 3600
    rest_gib = 10 / 2.5 * hours_left  # 4 GiB/h for the rest of the month
    by_hand = (rest_gib - (AWS_FREE_GIB - 10)) * AWS_RATE  # past the 90 GiB still free
    steady = (view.compute_usd + view.storage_usd) / 2.5  # created 2.5 h ago: all of it is the last 24 h
    assert view.forecast_month_usd == pytest.approx(view.total_usd + steady * hours_left + by_hand)
    assert by_hand > 100  # the allowance would hide this if the billed rate were run forward
