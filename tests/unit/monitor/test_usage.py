"""Replicas over time from a deployment's events, read as the providers write them (pure, no database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from thrifty.monitor.usage import Offer, PriceBook, Step, bucket_cost, replica_steps

T0 = datetime(2026, 3, 10, tzinfo=UTC)


@dataclass
class Event:
    at: datetime
    kind: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    state: str
    replicas: int
    created_at: datetime = T0
    updated_at: datetime = T0
    spec: dict[str, Any] = field(default_factory=lambda: {"replicas": 2})


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("events", "row", "expected"),
    [
        # the local provider's deploy / hibernate / wake: a wake restores the spec's replicas
        (
            [
                Event(at(0), "deploy", "2 replica(s) of artifact abc"),
                Event(at(10), "hibernate"),
                Event(at(20), "wake"),
            ],
            Row("running", 2, updated_at=at(20)),
            [(at(0), 2), (at(10), 0), (at(20), 2)],
        ),
        # scale reasons say "a → b"; events that do not change replicas (live, rebalance) are ignored
        (
            [Event(at(0), "deployed"), Event(at(1), "live"), Event(at(5), "scale", "2 → 3 replica(s)")],
            Row("running", 3, updated_at=at(5)),
            [(at(0), 2), (at(5), 3)],
        ),
        # an explicit count in the details wins over the reason
        ([Event(at(0), "deploy", "1 replica(s)", {"replicas": 4})], Row("running", 4), [(at(0), 4)]),
        # the row is the present: deleted since the last event means zero from its update
        (
            [Event(at(0), "deploy", "1 replica(s)")],
            Row("deleted", 1, updated_at=at(30)),
            [(at(0), 1), (at(30), 0)],
        ),
        # no events at all (a row written by hand): its replicas from creation
        ([], Row("running", 1), [(T0, 1)]),
    ],
)
def test_replica_steps(events: list[Event], row: Row, expected: list[tuple[datetime, int]]) -> None:
    assert [(s.at, s.value) for s in replica_steps(events, row)] == expected


def test_bucket_cost_splits_at_every_replica_and_price_change() -> None:
    offer = Offer("aws", "us-east-1", "", "m5.large", "spot", plan_usd_per_hour=None)
    book = PriceBook(offer, [Step(at(-60), 0.06), Step(at(30), 0.03)], "test")
    replicas = [Step(at(0), 2.0), Step(at(45), 1.0)]
    replica_s, usd = bucket_cost(replicas, book, at(0), at(60))
    assert replica_s == (45 * 2 + 15) * 60
    # 30 min × 2 at $0.06, 15 min × 2 at $0.03, 15 min × 1 at $0.03
    assert usd == pytest.approx(0.5 * 2 * 0.06 + 0.25 * 2 * 0.03 + 0.25 * 0.03)


def test_storage_is_split_between_the_deployments_serving_a_version(registry: Any) -> None:
    """A second live deployment of the same variant halves each one's storage; a deleted one does not count."""
    from tests.unit.monitor.fleet import NAME, make_fleet
    from thrifty.monitor.usage import storage_use

    make_fleet(registry)
    row = registry.get_deployment(NAME)
    alone = storage_use(registry, row, None)
    assert alone.usd_per_hour > 0
    registry.upsert_deployment("minilm-canary", provider="local", region="local", variant_id=row.variant_id,
                               state="running", replicas=1)  # fmt: skip
    assert storage_use(registry, row, None).usd_per_hour == pytest.approx(alone.usd_per_hour / 2)
    registry.upsert_deployment("minilm-canary", provider="local", state="deleted", replicas=0)
    assert storage_use(registry, row, None).usd_per_hour == pytest.approx(alone.usd_per_hour)
