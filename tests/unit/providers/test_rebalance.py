"""Spot rebalancing: the pure decisions on hand-made views, then the executor on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.providers.replay import CapacityFault
from thrifty.policies.rebalance import DeploymentView, Offer, RebalancePolicy, decide
from thrifty.providers.aws import AwsProvider
from thrifty.providers.base import PriceModel, Replica
from thrifty.providers.rebalance import Executor, view_of

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
SPOT, OD = PriceModel.SPOT, PriceModel.ON_DEMAND


@pytest.fixture
def artifact_sha(s3_artifact: tuple[str, str]) -> str:
    return s3_artifact[1]


def _view(
    replicas: list[Replica], markets: tuple[PriceModel, ...] = (SPOT, SPOT), **kw: Any
) -> DeploymentView:
    fields: dict[str, Any] = {
        "name": "m",
        "provider": "aws",
        "region": "us-east-1",
        "desired_markets": markets,
        "replicas": tuple(replicas),
        "on_demand_usd_per_hour": 0.10,
        "spot_usd_per_hour": 0.03,
    }
    fields.update(kw)
    return DeploymentView(**fields)


def _r(rid: str, slot: int, market: PriceModel = SPOT, state: str = "running", **kw: Any) -> Replica:
    return Replica(id=rid, slot=slot, market=market, state=state, **kw)


def test_healthy_spot_deployment_needs_nothing() -> None:
    assert decide(_view([_r("a", 0), _r("b", 1)]), now=NOW) == []


@pytest.mark.parametrize(("provider", "drain_s"), [("aws", 120), ("gcp", 30), ("azure", 30)])
def test_interruption_notice_replaces_within_the_provider_notice(provider: str, drain_s: int) -> None:
    view = _view([_r("a", 0), _r("b", 1)], provider=provider, noticed_ids=frozenset({"b"}))
    (action,) = decide(view, now=NOW)
    assert (action.kind, action.slot, action.old_replica_id, action.market) == ("replace", 1, "b", SPOT)
    assert action.drain_budget_s == drain_s
    assert "interruption notice" in action.reason


def test_lost_replica_is_replaced_on_demand_when_spot_is_out() -> None:
    # slot 1's instance was terminated; spot is known to be unavailable → the replacement falls back
    view = _view([_r("a", 0), _r("b", 1, state="terminated")], spot_available=False)
    (action,) = decide(view, now=NOW)
    assert (action.kind, action.slot, action.old_replica_id, action.market) == ("replace", 1, None, OD)
    assert "lost: b" in action.reason


def test_floor_slot_is_replaced_on_demand_even_when_spot_is_cheap() -> None:
    view = _view([_r("b", 1)], markets=(OD, SPOT))
    (action,) = decide(view, now=NOW)
    assert (action.kind, action.slot, action.market) == ("replace", 0, OD)


def test_floor_slot_running_on_spot_is_restored_and_costs_money() -> None:
    view = _view([_r("a", 0, SPOT), _r("b", 1)], markets=(OD, SPOT))
    (action,) = decide(view, now=NOW)
    assert (action.kind, action.market) == ("restore_floor", OD)
    assert action.usd_saved_per_month == pytest.approx(-(0.10 - 0.03) * 730)


@pytest.mark.parametrize(
    ("spot_available", "spot_price", "expect_return"),
    [
        (None, 0.03, True),  # cheaper and not known to be out: try
        (True, 0.03, True),
        (False, 0.03, False),  # still out: keep the fallback
        (True, 0.12, False),  # spot dearer than on-demand right now: stay
        (True, None, True),  # price unknown, the default policy tries
    ],
)
def test_on_demand_fallback_returns_to_spot_only_when_it_pays(
    spot_available: bool | None, spot_price: float | None, expect_return: bool
) -> None:
    view = _view(
        [_r("a", 0), _r("b", 1, OD, fallback=True)],
        spot_available=spot_available,
        spot_usd_per_hour=spot_price,
    )
    actions = decide(view, now=NOW)
    assert [a.kind for a in actions] == (["return_to_spot"] if expect_return else [])
    if expect_return and spot_price is not None:
        assert actions[0].usd_saved_per_month == pytest.approx((0.10 - spot_price) * 730)


ALT = Offer("gcp", "us-central1", "e2-standard-2", SPOT, 0.02)


@pytest.mark.parametrize(
    ("alt_usd", "last_migration", "previous", "expect"),
    [
        (0.02, None, None, True),  # 0.06 → 0.04: 33 % cheaper > 20 %
        (0.026, None, None, False),  # 13 % cheaper: below the threshold
        (0.02, NOW - timedelta(hours=1), None, False),  # moved an hour ago: dwell not over
        (0.02, NOW - timedelta(hours=7), None, True),
        (0.0215, None, ("gcp", "us-central1"), False),  # 28 %: enough to go, not to go *back* (30 %)
        (0.02, None, ("gcp", "us-central1"), True),  # 33 % beats threshold + hysteresis
    ],
)
def test_migration_needs_the_threshold_dwell_and_hysteresis(
    alt_usd: float, last_migration: datetime | None, previous: tuple[str, str] | None, expect: bool
) -> None:
    view = _view(
        [_r("a", 0), _r("b", 1)],
        alternative=Offer("gcp", "us-central1", "e2-standard-2", SPOT, alt_usd),
        last_migration_at=last_migration,
        previous_location=previous,
    )
    actions = [a for a in decide(view, now=NOW) if a.kind == "migrate"]
    assert bool(actions) is expect
    if expect:
        assert actions[0].usd_saved_per_month == pytest.approx((0.06 - alt_usd * 2) * 730)


def test_no_flapping_between_two_equal_offers() -> None:
    # two locations 25 % apart alternate as "cheapest": the move back needs 30 %, so it stays put
    there = _view(
        [_r("a", 0), _r("b", 1)],
        provider="gcp",
        region="us-central1",
        spot_usd_per_hour=0.04,
        alternative=Offer("aws", "us-east-1", "c7g.large", SPOT, 0.03),
        previous_location=("aws", "us-east-1"),
        last_migration_at=NOW - timedelta(days=1),
    )
    assert [a for a in decide(there, now=NOW) if a.kind == "migrate"] == []


def test_policy_rejects_a_nonsense_threshold() -> None:
    with pytest.raises(ValueError, match="migrate_threshold_fraction"):
        RebalancePolicy(migrate_threshold_fraction=1.5)


# -- on moto --------------------------------------------------------------------------------------
def _executor(aws: AwsProvider, switched: list[list[str]]) -> Executor:
    return Executor(
        provider=aws,
        health_check=lambda replica: replica.state == "running",
        switch_traffic=lambda name, replicas: switched.append(sorted(r.id for r in replicas)),
    )


def test_spot_interruption_is_replaced_switched_and_drained_on_moto(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec())
    victim = next(r for r in aws.replicas("minilm") if r.live)
    aws.ec2.terminate_instances(InstanceIds=[victim.id])  # AWS reclaims the spot instance
    view = view_of(aws, "minilm", region="us-east-1", noticed_ids=[victim.id])
    switched: list[list[str]] = []
    outcomes = _executor(aws, switched).run(decide(view, now=NOW))
    assert [(o.action.kind, o.status) for o in outcomes] == [("replace", "done")]
    live = [r for r in aws.replicas("minilm") if r.live]
    assert len(live) == 2 and victim.id not in {r.id for r in live}
    assert {r.market for r in live} == {SPOT}
    assert switched == [sorted(r.id for r in live)], "traffic must go to the new set"


def test_notice_on_a_running_replica_drains_the_old_one(aws: AwsProvider, make_spec: Any) -> None:
    aws.deploy(make_spec())
    noticed = next(r for r in aws.replicas("minilm") if r.live)
    view = view_of(aws, "minilm", region="us-east-1", noticed_ids=[noticed.id])
    (outcome,) = _executor(aws, []).run(decide(view, now=NOW))
    assert outcome.drained_s == 10.0  # min(AWS 120 s budget, executor's drain wait)
    states = {r.id: r for r in aws.replicas("minilm")}
    assert states[noticed.id].retired and states[noticed.id].state in ("shutting-down", "terminated")


def test_fallback_returns_to_spot_when_capacity_comes_back_on_moto(aws: AwsProvider, make_spec: Any) -> None:
    fault = CapacityFault(aws.ec2)
    aws.deploy(make_spec())
    assert {r.market for r in aws.replicas("minilm") if r.live} == {OD}

    # still no spot: the pass tries, keeps the on-demand fallbacks, changes nothing
    view = view_of(aws, "minilm", region="us-east-1", on_demand_usd_per_hour=0.1, spot_usd_per_hour=0.03)
    outcomes = _executor(aws, []).run(decide(view, now=NOW))
    assert [o.status for o in outcomes] == ["skipped", "skipped"]
    assert {r.market for r in aws.replicas("minilm") if r.live} == {OD}

    fault.on = False  # spot capacity is back
    view = view_of(aws, "minilm", region="us-east-1", on_demand_usd_per_hour=0.1, spot_usd_per_hour=0.03)
    outcomes = _executor(aws, []).run(decide(view, now=NOW))
    assert [(o.action.kind, o.status) for o in outcomes] == [("return_to_spot", "done")] * 2
    assert sum(o.action.usd_saved_per_month for o in outcomes) == pytest.approx(2 * 0.07 * 730)
    live = [r for r in aws.replicas("minilm") if r.live]
    assert len(live) == 2 and {(r.market, r.fallback) for r in live} == {(SPOT, False)}


def test_rebalance_passes_record_events_with_prices_from_the_plan(
    aws: AwsProvider, make_spec: Any, thrifty_home: Any
) -> None:
    from thrifty import runtime
    from thrifty.providers.rebalance import rebalance_deployment

    registry = runtime.registry()
    chosen = {"provider": "aws", "region": "us-east-1", "instance_type": "c7g.large", "price_model": "spot",
              "usd_per_hour": 0.03, "on_demand_usd_per_hour": 0.10}  # fmt: skip
    plan = registry.add_plan(chosen=chosen, record={"chosen": chosen, "candidates": [chosen]})
    registry.upsert_deployment("minilm", provider="aws", region="us-east-1", plan_id=plan.id)
    fault = CapacityFault(aws.ec2)
    aws.deploy(make_spec())
    executor = _executor(aws, [])

    for _ in range(2):  # spot still out: passes change nothing and write no event
        outcomes = rebalance_deployment(executor, registry, "minilm", region="us-east-1", now=NOW)
        assert [o.status for o in outcomes] == ["skipped", "skipped"]
    assert registry.list_events("minilm") == []

    fault.on = False
    rebalance_deployment(executor, registry, "minilm", region="us-east-1", now=NOW)
    events = registry.list_events("minilm")
    assert [e.kind for e in events] == ["rebalance.return_to_spot"] * 2
    assert [e.usd_saved_per_month for e in events] == pytest.approx([0.07 * 730] * 2)
    assert all("spot is cheaper by 51.10 USD/month" in e.reason and e.details["done"] for e in events)
