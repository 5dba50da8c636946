"""The decision API: one model's request history and costs → keep-warm / hibernate / pre-warm now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from thrifty.errors import ConfigError
from thrifty.policies import Action, get_policy
from thrifty.policies.decide import ModelCosts, decide

NOW = datetime(2026, 11, 26, 15, 0, 30, tzinfo=UTC)
COSTS = ModelCosts(idle_usd_per_hour=0.6, cold_start_s=20.0)


def hourly(last_ago_min: int, hours: int = 48) -> list[datetime]:
    """A request every hour, the newest ``last_ago_min`` minutes before now."""
    newest = NOW.replace(second=0) - timedelta(minutes=last_ago_min)
    return [newest - timedelta(hours=h) for h in range(hours)]


def test_fixed_keepalive_hibernates_after_its_timer() -> None:
    assert decide(hourly(5), NOW, COSTS, get_policy("fixed-10")).action is Action.KEEP_WARM
    late = decide(hourly(15), NOW, COSTS, get_policy("fixed-10"))
    assert late.action is Action.HIBERNATE
    assert late.warm_until is None


@pytest.mark.parametrize("name", ["hybrid-histogram", "thrifty-cost-aware"])
def test_learned_policies_hibernate_then_prewarm_an_hourly_model(name: str) -> None:
    policy = get_policy(name)
    idle = decide(hourly(20), NOW, COSTS, policy)
    assert idle.action is Action.HIBERNATE
    assert idle.next_prewarm_at is not None
    # the next request is due 60 min after the last one; the pre-warm lands a few minutes before it
    due = NOW.replace(second=0) + timedelta(minutes=40)
    assert due - timedelta(minutes=10) <= idle.next_prewarm_at <= due
    soon = decide(hourly(56), NOW, COSTS, policy)
    assert soon.action in {Action.PRE_WARM, Action.KEEP_WARM}
    assert soon.warm_until is not None and soon.warm_until > NOW


def test_serving_now_keeps_warm_and_no_history_hibernates() -> None:
    busy = decide([NOW - timedelta(seconds=10)], NOW, COSTS, get_policy("thrifty-cost-aware"))
    assert busy.action is Action.KEEP_WARM
    quiet = decide([], NOW, COSTS, get_policy("thrifty-cost-aware"))
    assert quiet.action is Action.HIBERNATE and "no request" in quiet.reason


def test_dollar_pricing_keeps_warm_only_when_a_cold_start_costs_more_than_idling() -> None:
    # a request every 30 min, the last 5 min ago
    history = [NOW.replace(second=0) - timedelta(minutes=5 + 30 * k) for k in range(96)]
    cheap_wait = ModelCosts(idle_usd_per_hour=3.0, cold_start_s=5.0, usd_per_cold_start_s=1e-4)
    dear_wait = ModelCosts(idle_usd_per_hour=0.1, cold_start_s=60.0, usd_per_cold_start_s=1.0)
    policy = get_policy("thrifty-cost-aware")
    cheap = decide(history, NOW, cheap_wait, policy)
    # idling is dear: sleep now, wake for one or two minutes just before the next request
    assert cheap.action is Action.HIBERNATE and cheap.keepalive_min <= 2
    assert cheap.next_prewarm_at is not None
    dear = decide(history, NOW, dear_wait, policy)
    # a minute of wait costs more than hours of idling: stay warm well past the next request
    assert dear.action is Action.KEEP_WARM and dear.prewarm_min == 0 and dear.keepalive_min >= 30


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ConfigError, match="naive"):
        decide([], NOW.replace(tzinfo=None), COSTS, get_policy("fixed-10"))
    with pytest.raises(ConfigError, match="idle_usd_per_hour"):
        ModelCosts(idle_usd_per_hour=-1.0, cold_start_s=1.0)
