"""The dashboard's paged and aggregated reads (thrifty.read), on SQLite and PostgreSQL.

Each expectation is recomputed from the rows themselves (requests_since, the plan records), so a
wrong GROUP BY, bucket or join shows up as a mismatch, not as a hard-coded number.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.fleet import seed_fleet
from thrifty import read
from thrifty.registry import Registry

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def fleet(registry: Registry) -> tuple[Registry, list[str]]:
    return registry, seed_fleet(registry, 5, 700, now=NOW, seed=3)


def test_deployments_page_counts_and_latency_from_the_log(fleet: tuple[Registry, list[str]]) -> None:
    registry, names = fleet
    page = read.deployments_page(registry, offset=2, limit=2, now=NOW)
    assert (page.total, page.previous_offset, page.next_offset) == (5, 0, 4)
    assert [r.name for r in page.rows] == names[2:4]
    for row in page.rows:
        recent = registry.requests_since(row.name, NOW - timedelta(seconds=read.STATS_WINDOW_S))
        all_rows = registry.requests_since(row.name, NOW - timedelta(days=2))
        assert row.requests == len(all_rows) > 0
        assert row.rps == pytest.approx(len(recent) / read.STATS_WINDOW_S)
        assert row.latency_ms_p95 == read._percentile([r.latency_ms for r in recent], 95)
        assert row.usd_per_month == registry.get_plan(registry.get_deployment(row.name).plan_id).usd_per_month


def test_traffic_buckets_add_up_to_the_log(fleet: tuple[Registry, list[str]]) -> None:
    registry, names = fleet
    buckets = read.traffic(registry, names[0], hours=24, buckets=24, now=NOW)
    rows = registry.requests_since(names[0], NOW - timedelta(hours=24))
    assert sum(b.requests for b in buckets) == len(rows)
    assert sum(b.errors for b in buckets) == sum(r.status_code >= 400 for r in rows)
    assert max(b.latency_ms_max for b in buckets) == pytest.approx(max(r.latency_ms for r in rows))
    assert all(b.at.minute == 0 and b.at.second == 0 for b in buckets)  # hour-aligned buckets


def _record_cost(registry: Registry, name: str) -> tuple[str, float, float]:
    record: dict[str, Any] = registry.get_plan(registry.get_deployment(name).plan_id).record
    return (
        record["chosen"]["provider"],
        record["chosen"]["usd_per_month"],
        record["baseline"]["usd_per_month"],
    )


def test_costs_by_cloud_sum_the_plan_records(fleet: tuple[Registry, list[str]]) -> None:
    registry, names = fleet
    expected: dict[str, list[float]] = {}
    for name in names:
        cloud, plan_usd, baseline_usd = _record_cost(registry, name)
        sums = expected.setdefault(cloud, [0, 0.0, 0.0])
        sums[0] += 1
        sums[1] += plan_usd
        sums[2] += baseline_usd
    page = read.costs_page(registry, limit=3)
    got = {c.cloud: [c.deployments, c.usd_per_month, c.baseline_usd_per_month] for c in page.by_cloud}
    assert got.keys() == expected.keys()
    for cloud, (count, plan_usd, baseline_usd) in expected.items():
        assert got[cloud] == [count, pytest.approx(plan_usd), pytest.approx(baseline_usd)]
    assert [r.deployment for r in page.rows] == names[:3] and page.total == 5


def test_plan_columns_backfilled_by_the_migration(database_url: str) -> None:
    """A plan stored before 0002_dashboard gets its cloud and baseline cost from its record."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from thrifty.registry.db import MIGRATIONS_DIR, make_engine

    engine = make_engine(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    record = {"chosen": {"provider": "gcp", "usd_per_month": 10.0}, "baseline": {"usd_per_month": 40.0}}
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0001")
        connection.execute(
            text("INSERT INTO plans (slo, chosen, record, created_at) VALUES ('{}', '{}', :r, :at)"),
            {"r": json.dumps(record), "at": NOW},
        )
        command.upgrade(cfg, "head")
        row = connection.execute(text("SELECT chosen_provider, baseline_usd_per_month FROM plans")).one()
    engine.dispose()
    assert tuple(row) == ("gcp", 40.0)


def test_recent_events_newest_first_of_the_asked_kinds(fleet: tuple[Registry, list[str]]) -> None:
    registry, names = fleet
    registry.add_event(
        names[1], "cheaper-plan", "older", usd_saved_per_month=3.0, at=NOW - timedelta(hours=9)
    )
    registry.add_event(
        names[2], "cheaper-plan", "newer", usd_saved_per_month=4.0, at=NOW - timedelta(minutes=1)
    )
    found = read.recent_events(registry, read.RECOMMENDATION_KINDS)
    assert {e.kind for e in found} == {"cheaper-plan"}
    assert [e.at for e in found] == sorted((e.at for e in found), reverse=True)
    assert found[0].reason == "newer" and found[0].deployment == names[2]


def test_costs_page_sums_this_months_ledger_by_deployment_and_cloud(
    fleet: tuple[Registry, list[str]],
) -> None:
    """Ledger hours of this month count (every kind); last month's and later ones do not."""
    from thrifty.registry import fleet as ledger

    registry, names = fleet
    month = NOW.replace(day=1, hour=0)
    spent = {names[0]: [(month, 1.25), (NOW - timedelta(hours=2), 2.0), (month - timedelta(hours=1), 50.0)],
             names[1]: [(NOW - timedelta(hours=1), 0.5)]}  # fmt: skip
    for name, hours in spent.items():
        rows = [{"hour_start": at, "kind": "compute", "quantity": 1.0, "unit": "replica-hour", "usd": usd}
                for at, usd in hours]  # fmt: skip
        ledger.replace_buckets(registry, name, 3600, (month - timedelta(hours=1), NOW), [], rows)
    page = read.costs_page(registry, now=NOW)
    actual = {r.deployment: r.actual_usd_month_to_date for r in page.rows}
    assert actual[names[0]] == pytest.approx(3.25) and actual[names[1]] == pytest.approx(0.5)
    assert actual[names[2]] is None  # no ledger rows: shown as —, not $0
    expected: dict[str, float] = {}
    for name in names[:2]:
        cloud = _record_cost(registry, name)[0]
        expected[cloud] = expected.get(cloud, 0.0) + (actual[name] or 0.0)
    assert {c.cloud: c.actual_usd_month_to_date for c in page.by_cloud if c.actual_usd_month_to_date} == (
        pytest.approx(expected)
    )
    share = (NOW - month).total_seconds() / (31 * 86400)  # December
    row = page.rows[0]
    assert row.plan_usd_to_date == pytest.approx((row.usd_per_month or 0) * share)
    assert page.ledger_until == NOW
