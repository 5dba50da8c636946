"""The spend ledger on a real registry and a simulated clock: replica history × the price in force."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.monitor.fleet import (
    NAME,
    PRICE_AFTER,
    PRICE_BEFORE,
    PRICE_CHANGE,
    SCALE_IN,
    T0,
    make_fleet,
    quote,
    requests,
)
from thrifty import read
from thrifty.monitor.ledger import month_end
from thrifty.monitor.rollup import roll_up

NOW = T0 + timedelta(hours=2, minutes=30)


def expected_compute_usd(now: Any = NOW) -> float:
    """By hand: 2 replicas until the scale-in, 1 after; $0.096/h until the price change, $0.12/h after."""
    hours = lambda a, b: (b - a).total_seconds() / 3600  # noqa: E731
    return (
        2 * hours(T0, SCALE_IN) * PRICE_BEFORE
        + hours(SCALE_IN, PRICE_CHANGE) * PRICE_BEFORE
        + hours(PRICE_CHANGE, now) * PRICE_AFTER
    )


def test_month_to_date_is_the_same_from_the_ledger_and_on_the_spot(registry: Any) -> None:
    make_fleet(registry)
    before = read.costs(registry, NAME, now=NOW).deployments[0]
    assert before.compute_usd == pytest.approx(expected_compute_usd())
    roll_up(registry, now=NOW)  # two whole hours go to the ledger, the last 30 min stay on the spot
    after = read.costs(registry, NAME, now=NOW).deployments[0]
    assert after.compute_usd == pytest.approx(expected_compute_usd())
    assert after.storage_usd == pytest.approx(before.storage_usd)
    assert after.storage_usd > 0 and after.storage_usd_saved > 0  # the warm original
    assert after.replica_hours == pytest.approx(2 * 0.5 + 2.0)
    assert after.usd_per_hour_now == pytest.approx(PRICE_AFTER)
    assert after.transfer_usd == 0.0 and after.egress_gib == 0.0  # no request logged, no copy priced
    assert any("transfer" in note for note in after.notes)


def test_per_million_requests_on_both_bases(registry: Any) -> None:
    make_fleet(registry)
    for minute in range(0, 150, 10):
        registry.log_requests_bulk(requests(T0 + timedelta(minutes=minute), [50.0] * 100))
    roll_up(registry, now=NOW - timedelta(minutes=20))
    view = read.costs(registry, NAME, now=NOW).deployments[0]
    assert view.requests == 1500
    reservation = expected_compute_usd() / 1500 * 1e6
    busy_share = (1500 * 0.05) / (view.replica_hours * 3600)
    assert view.usd_per_million_requests_reservation == pytest.approx(reservation)
    assert view.usd_per_million_requests_usage == pytest.approx(reservation * busy_share)
    assert view.usd_per_million_requests_usage < view.usd_per_million_requests_reservation


def test_forecast_runs_the_observed_rate_to_month_end_next_to_plan_and_baseline(registry: Any) -> None:
    make_fleet(registry)
    view = read.costs(registry, NAME, now=NOW).deployments[0]
    # created 2.5 h ago, so the last-24-h rate is everything so far over 2.5 h
    rate = view.total_usd / 2.5
    assert view.run_rate_usd_per_hour == pytest.approx(rate)
    hours_left = (month_end(NOW) - NOW).total_seconds() / 3600
    assert view.forecast_month_usd == pytest.approx(view.total_usd + rate * hours_left)
    assert view.plan_usd_per_month == pytest.approx(PRICE_BEFORE * 730)
    assert view.baseline_usd_per_month == pytest.approx(140.16)
    assert view.baseline_usd_per_million_requests == pytest.approx(5.4)


def test_spot_history_first_then_on_demand(registry: Any) -> None:
    make_fleet(registry, price_model="spot")
    # no spot quotes yet: on-demand history, said so
    first = read.costs(registry, NAME, now=NOW).deployments[0]
    assert first.compute_usd == pytest.approx(expected_compute_usd())
    assert any("on_demand" in s for s in first.price_sources)
    registry.append_price_quotes([quote(T0 - timedelta(hours=1), 0.03, "spot")])
    spot = read.costs(registry, NAME, now=NOW).deployments[0]
    assert spot.compute_usd == pytest.approx((2 * 0.5 + 2.0) * 0.03)
    assert any("spot" in s for s in spot.price_sources)


def test_costs_command_prints_the_ledger(thrifty_home: Any) -> None:
    from thrifty import runtime
    from thrifty.cli import app

    make_fleet(runtime.registry())
    runner = CliRunner()
    shown = runner.invoke(app, ["costs"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert NAME in shown.output and "forecast" in shown.output
    as_json = runner.invoke(app, ["costs", NAME, "--json"])
    assert as_json.exit_code == 0, as_json.output
    import json

    body = json.loads(as_json.output)
    assert body["deployments"][0]["deployment"] == NAME
    assert body["deployments"][0]["compute_usd"] > 0  # one replica runs all month at $0.12/h
    missing = runner.invoke(app, ["costs", "nope"])
    assert missing.exit_code != 0 and "Traceback" not in missing.output
