"""Fleet metrics rolled up from a real request log (SQLite and PostgreSQL) on a simulated clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.unit.monitor.fleet import (
    INT8_BYTES,
    NAME,
    ORIGINAL_BYTES,
    PRICE_AFTER,
    PRICE_BEFORE,
    PRICE_CHANGE,
    SCALE_IN,
    T0,
    make_fleet,
    requests,
)
from thrifty import read
from thrifty.monitor.rollup import HOUR_S, MINUTE_S, roll_up
from thrifty.registry import fleet


def _minutes(registry: Any) -> dict[Any, Any]:
    rows = fleet.rollups(registry, NAME, MINUTE_S, T0 - timedelta(days=30), T0 + timedelta(days=30))
    return {r.bucket_start: r for r in rows}


def test_minute_bucket_counts_errors_cold_starts_and_percentiles(registry: Any) -> None:
    make_fleet(registry)
    at = T0 + timedelta(minutes=1)
    latencies = [float(ms) for ms in range(10, 101, 10)]  # 10 … 100 ms
    registry.log_requests_bulk(requests(at, latencies) + requests(at, [500.0], status=503, cold=True))
    roll_up(registry, now=T0 + timedelta(minutes=5))
    bucket = _minutes(registry)[at]
    assert (bucket.requests, bucket.errors, bucket.cold_starts) == (11, 1, 1)
    # nearest rank over the 11 sorted latencies: p50 is the 6th, p95 and p99 the 11th
    assert bucket.latency_ms_p50 == 60.0
    assert bucket.latency_ms_p95 == bucket.latency_ms_p99 == 500.0
    assert bucket.busy_s == pytest.approx((sum(latencies) + 500.0) / 1000)
    # two replicas for the whole minute at the first price
    assert bucket.replica_s == pytest.approx(120.0)
    assert bucket.usd == pytest.approx(2 * PRICE_BEFORE / 60)
    roll_up(registry, now=T0 + timedelta(hours=1, minutes=1))
    hour = fleet.rollups(registry, NAME, HOUR_S, T0, T0 + timedelta(hours=1))[0]
    assert (hour.requests, hour.errors, hour.cold_starts) == (11, 1, 1)
    assert hour.latency_ms_p95 == 500.0  # the only minute with requests
    points = read.fleet_metrics(registry, NAME, since=T0, now=T0 + timedelta(minutes=3))
    assert [(p.requests, p.errors, p.replicas) for p in points] == [(0, 0, 2.0), (11, 1, 2.0), (0, 0, 2.0)]
    assert points[1].error_rate == pytest.approx(1 / 11) and points[1].rps == pytest.approx(11 / 60)


def test_hour_follows_replica_and_price_history_into_the_ledger(registry: Any) -> None:
    make_fleet(registry)
    roll_up(registry, now=T0 + timedelta(hours=2, minutes=5))
    hours = fleet.rollups(registry, NAME, HOUR_S, T0, T0 + timedelta(hours=3))
    assert [h.bucket_start for h in hours] == [T0, T0 + timedelta(hours=1)]  # only complete hours
    first = hours[0]
    two, one_old, one_new = (
        (SCALE_IN - T0),
        (PRICE_CHANGE - SCALE_IN),
        (T0 + timedelta(hours=1) - PRICE_CHANGE),
    )
    assert first.replica_s == pytest.approx(2 * two.total_seconds() + (one_old + one_new).total_seconds())
    expected = (2 * two.total_seconds() + one_old.total_seconds()) / 3600 * PRICE_BEFORE
    expected += one_new.total_seconds() / 3600 * PRICE_AFTER
    assert first.usd == pytest.approx(expected)
    ledger = fleet.spend(registry, NAME, T0, T0 + timedelta(hours=3))
    compute = [e for e in ledger if e.kind == "compute"]
    storage = [e for e in ledger if e.kind == "storage"]
    assert [e.usd for e in compute] == pytest.approx([h.usd for h in hours])
    minutes = _minutes(registry)
    assert first.usd == pytest.approx(sum(m.usd for at, m in minutes.items() if at < T0 + timedelta(hours=1)))
    assert "price_quotes on_demand" in compute[0].source
    assert len(storage) == 2 and storage[0].quantity == ORIGINAL_BYTES + INT8_BYTES
    # the warm original is cheaper than hot: a saving, and less than the all-hot price
    assert 0 < storage[0].usd_saved < storage[0].usd


def test_rerun_is_idempotent_and_a_minute_waits_for_the_gateway_flush(registry: Any) -> None:
    make_fleet(registry)
    at = T0 + timedelta(minutes=3)
    registry.log_requests_bulk(requests(at, [20.0] * 5))
    # 5 s after minute 3 ended: its last batch may still be in the gateway, so it is not rolled up
    roll_up(registry, now=at + timedelta(seconds=65))
    assert at not in _minutes(registry)
    registry.log_requests_bulk(requests(at + timedelta(seconds=50), [20.0] * 3))  # the late batch
    now = T0 + timedelta(minutes=5)
    roll_up(registry, now=now)
    first = {k: (v.requests, v.usd) for k, v in _minutes(registry).items()}
    assert first[at][0] == 8
    roll_up(registry, now=now)
    assert {k: (v.requests, v.usd) for k, v in _minutes(registry).items()} == first


def test_minutes_are_kept_seven_days_and_hours_longer(registry: Any) -> None:
    make_fleet(registry)
    registry.log_requests_bulk(requests(T0 + timedelta(minutes=1), [20.0]))
    roll_up(registry, now=T0 + timedelta(hours=2))
    assert _minutes(registry)
    report = roll_up(registry, now=T0 + timedelta(days=8))
    kept = _minutes(registry)
    assert kept and min(kept) >= T0 + timedelta(days=1)  # a week back from day 8, not the first day
    assert report.pruned_rows > 0
    assert fleet.rollups(registry, NAME, HOUR_S, T0, T0 + timedelta(hours=1))  # hours stay 400 days
