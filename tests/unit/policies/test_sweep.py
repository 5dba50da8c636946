"""The per-deployment sweep decision (pure) and the price-monitor comparison, on hand-made inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from thrifty.errors import ConfigError
from thrifty.policies.pricewatch import cheaper_offer, replan_inputs
from thrifty.policies.sweep import DeploymentFacts, SweepConfig, sweep_decision

NOW = datetime(2026, 11, 26, 15, 0, 30, tzinfo=UTC)
FIXED = SweepConfig(policy="fixed-10", min_warm_min=5.0)


def ago(*minutes: float) -> list[datetime]:
    return [NOW - timedelta(minutes=m) for m in minutes]


@pytest.mark.parametrize(
    ("state", "requests", "changed_min_ago", "do"),
    [
        ("running", ago(3), 60, "none"),  # inside fixed 10 min: stays warm
        ("running", ago(30), 60, "hibernate"),  # idle past the keep-alive
        ("running", ago(30), 2, "none"),  # …but changed 2 min ago: held warm (min_warm_min 5)
        ("hibernated", ago(0.2), 60, "wake"),  # a request this minute: wake
        ("hibernated", ago(30), 60, "none"),  # stays hibernated
        ("failed", ago(0.2), 60, "none"),  # nothing to do for a failed deployment
    ],
)
def test_fixed_policy_actions(state: str, requests: list[datetime], changed_min_ago: float, do: str) -> None:
    facts = DeploymentFacts("m", state, changed_at=NOW - timedelta(minutes=changed_min_ago))
    assert sweep_decision(facts, requests, NOW, FIXED).do == do


def test_modes_and_overrides() -> None:
    facts = DeploymentFacts("m", "hibernated")
    pinned = FIXED.with_overrides({"mode": "always-warm", "policy": None})
    assert pinned.policy == "fixed-10"  # None leaves the block's value
    assert sweep_decision(facts, [], NOW, pinned).do == "wake"
    assert (
        sweep_decision(DeploymentFacts("m", "running"), [], NOW, FIXED.with_overrides({"mode": "off"})).do
        == "none"
    )
    with pytest.raises(ConfigError, match="unknown hibernation settings"):
        FIXED.with_overrides({"keep_min": 3})
    with pytest.raises(ConfigError, match="mode"):
        SweepConfig(mode="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requests", "floor", "do", "new_floor"),
    [
        (ago(3), 0, "floor", 1),  # inside fixed 10 min: warm floor up to 1
        (ago(3), 3, "none", 3),  # a higher floor is kept while warm
        (ago(30), 2, "floor", 0),  # idle: floor 0, scale to zero left to the platform
        (ago(30), 0, "none", 0),  # already 0: nothing to call
    ],
)
def test_serverless_sets_only_the_warm_floor(
    requests: list[datetime], floor: int, do: str, new_floor: int
) -> None:
    facts = DeploymentFacts("m", "running", changed_at=NOW, serverless=True, warm_floor=floor)
    decision = sweep_decision(facts, requests, NOW, FIXED)
    assert (decision.do, decision.warm_floor) == (do, new_floor)  # never "hibernate", never held
    assert decision.row()["warm_floor"] == new_floor
    pinned = sweep_decision(facts, [], NOW, FIXED.with_overrides({"mode": "always-warm"}))
    assert pinned.warm_floor == max(1, floor)


def test_plan_cost_reaches_the_decision() -> None:
    facts = DeploymentFacts("m", "running", idle_usd_per_hour=1.2)
    decision = sweep_decision(facts, ago(3), NOW, FIXED).decision
    assert decision is not None and decision.idle_usd_per_window == pytest.approx(10 / 60 * 1.2)


CHOSEN = {
    "variant": "int8",
    "provider": "aws",
    "region": "us-east-1",
    "zone": "",
    "instance_type": "c7g.large",
    "price_model": "on_demand",
    "usd_per_month": 100.0,
}


def decision_with(best_usd: float, current_usd: float | None) -> dict[str, object]:
    best = CHOSEN | {
        "provider": "gcp",
        "region": "us-central1",
        "instance_type": "t2a-standard-2",
        "usd_per_month": best_usd,
    }
    candidates = [best] + ([CHOSEN | {"usd_per_month": current_usd}] if current_usd is not None else [])
    return {"chosen": best, "candidates": candidates}


def test_cheaper_offer_beyond_threshold_only() -> None:
    # current offer repriced at 100 $/month; 85 saves 15 % > 10 % → an event
    found = cheaper_offer("m", CHOSEN, 100.0, decision_with(85.0, 100.0), threshold_fraction=0.10)
    assert found is not None and found.saving_usd_per_month == pytest.approx(15.0)
    assert found.best["provider"] == "gcp" and isinstance(found.saving_fraction, float)
    # 95 saves 5 %: below the threshold
    assert cheaper_offer("m", CHOSEN, 100.0, decision_with(95.0, 100.0), threshold_fraction=0.10) is None
    # the current offer got dearer in the fresh prices (120): 95 now saves 20 %
    assert cheaper_offer("m", CHOSEN, 100.0, decision_with(95.0, 120.0), threshold_fraction=0.10) is not None
    # not a candidate any more: the stored cost is used
    assert cheaper_offer("m", CHOSEN, 100.0, decision_with(80.0, None), threshold_fraction=0.10) is not None
    # same offer chosen again: nothing cheaper
    same = {"chosen": CHOSEN, "candidates": [CHOSEN]}
    assert cheaper_offer("m", CHOSEN, 100.0, same, threshold_fraction=0.0) is None
    with pytest.raises(ConfigError):
        cheaper_offer("m", CHOSEN, 100.0, same, threshold_fraction=1.5)


def test_replan_inputs_from_a_stored_record() -> None:
    record = {
        "model": "minilm",
        "slo": {"latency_ms_p95": 50.0, "providers": ["aws"]},
        "traffic": {"rps": 5.0, "requests_per_month": 1e7},
        "variants": [{"recorded": True}],
    }
    inputs = replan_inputs(record)
    assert inputs["slo"]["providers"] == ("aws",) and "requests_per_month" not in inputs["traffic"]
    assert inputs["recorded"] is True
    with pytest.raises(ConfigError, match="lacks 'slo'"):
        replan_inputs({"model": "m"})
