"""Spot rebalancing decisions: pure functions of a deployment's view (no I/O).

What one pass decides for one deployment, in this order:

1. **replace** — a slot whose replica got an interruption notice, or that has no live replica
   (interrupted, or terminated behind thrifty's back): start a new one, health-check it, switch
   traffic, then drain the old one within the provider's notice (AWS 120 s, GCP and Azure 30 s).
   Floor slots are replaced on-demand; the rest on spot, or on-demand when spot is known to be out.
2. **restore_floor** — a slot below the configured on-demand floor that runs on spot goes back to
   on-demand (it costs money; the floor is there for slow-starting inference).
3. **return_to_spot** — an on-demand fallback in a spot slot moves back to spot when spot is not
   known to be unavailable and is cheaper (or its price is unknown and the policy allows a try).
4. **migrate** — another region/cloud the planner found is cheaper by more than a threshold. With
   hysteresis: at least ``min_dwell_s`` since the last migration, and going back to where it came
   from needs the threshold plus ``hysteresis_fraction``; so two offers trading places do not make
   it flap.

Every action carries its reason and ``usd_saved_per_month`` (negative when it costs money), which
the executor (``thrifty.providers.rebalance``) records — the flow writes them as deployment events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from thrifty.providers.base import PriceModel, Replica
from thrifty.targets import interruption_notice_s

HOURS_PER_MONTH = 730.0

ActionKind = Literal["replace", "restore_floor", "return_to_spot", "migrate"]


@dataclass(frozen=True)
class Offer:
    """A place to run one replica and its price (from the price catalog / planner)."""

    provider: str
    region: str
    instance_type: str
    price_model: PriceModel
    usd_per_hour: float


@dataclass(frozen=True)
class DeploymentView:
    """Everything ``decide`` needs about one deployment; built by the caller from provider + registry."""

    name: str
    provider: str
    region: str
    desired_markets: tuple[PriceModel, ...]
    replicas: tuple[Replica, ...]
    on_demand_usd_per_hour: float | None = None
    spot_usd_per_hour: float | None = None
    spot_available: bool | None = None
    noticed_ids: frozenset[str] = frozenset()
    last_migration_at: datetime | None = None
    previous_location: tuple[str, str] | None = None
    alternative: Offer | None = None


@dataclass(frozen=True)
class RebalancePolicy:
    migrate_threshold_fraction: float = 0.20
    hysteresis_fraction: float = 0.10
    min_dwell_s: float = 6 * 3600.0
    min_saving_usd_per_month: float = 5.0
    try_spot_when_price_unknown: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.migrate_threshold_fraction < 1.0:
            raise ValueError(f"migrate_threshold_fraction={self.migrate_threshold_fraction} is not in [0, 1)")
        if self.hysteresis_fraction < 0.0 or self.min_dwell_s < 0.0:
            raise ValueError("hysteresis_fraction and min_dwell_s must be ≥ 0")


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    deployment: str
    reason: str
    usd_saved_per_month: float
    drain_budget_s: int
    slot: int | None = None
    old_replica_id: str | None = None
    market: PriceModel | None = None
    target: Offer | None = None


# -- decisions (pure) --------------------------------------------------------------------------
def decide(
    view: DeploymentView, policy: RebalancePolicy | None = None, now: datetime | None = None
) -> list[Action]:
    policy = policy or RebalancePolicy()
    now = now or datetime.now(UTC)
    actions = _replacements(view)
    touched = {a.slot for a in actions}
    actions += [a for a in _floor_restores(view) if a.slot not in touched]
    touched |= {a.slot for a in actions}
    actions += [a for a in _spot_returns(view, policy) if a.slot not in touched]
    migration = _migration(view, policy, now)
    return [*actions, migration] if migration else actions


def _drain_s(view: DeploymentView) -> int:
    """The drain budget: the target's interruption notice (its descriptor says how long)."""
    return interruption_notice_s(view.provider)


def _live_by_slot(view: DeploymentView) -> dict[int, Replica]:
    return {r.slot: r for r in view.replicas if r.live}


def _replacement_market(view: DeploymentView, slot: int) -> PriceModel:
    wanted = view.desired_markets[slot]
    if wanted is PriceModel.SPOT and view.spot_available is False:
        return PriceModel.ON_DEMAND
    return wanted


def _replacements(view: DeploymentView) -> list[Action]:
    live = _live_by_slot(view)
    actions = []
    for slot in range(len(view.desired_markets)):
        current = live.get(slot)
        if current is not None and current.id not in view.noticed_ids:
            continue
        if current is None:
            lost = [r.id for r in view.replicas if r.slot == slot and not r.retired]
            reason = f"slot {slot} has no live replica (lost: {', '.join(lost) or 'none'})"
        else:
            reason = f"replica {current.id} got a spot interruption notice"
        actions.append(
            Action(
                kind="replace",
                deployment=view.name,
                reason=reason,
                usd_saved_per_month=0.0,
                drain_budget_s=_drain_s(view),
                slot=slot,
                old_replica_id=current.id if current else None,
                market=_replacement_market(view, slot),
            )
        )
    return actions


def _monthly_delta(view: DeploymentView) -> float | None:
    if view.on_demand_usd_per_hour is None or view.spot_usd_per_hour is None:
        return None
    return (view.on_demand_usd_per_hour - view.spot_usd_per_hour) * HOURS_PER_MONTH


def _floor_restores(view: DeploymentView) -> list[Action]:
    live = _live_by_slot(view)
    delta = _monthly_delta(view)
    return [
        Action(
            kind="restore_floor",
            deployment=view.name,
            reason=f"slot {slot} is below the on-demand floor but runs on spot ({replica.id})",
            usd_saved_per_month=-(delta or 0.0),
            drain_budget_s=_drain_s(view),
            slot=slot,
            old_replica_id=replica.id,
            market=PriceModel.ON_DEMAND,
        )
        for slot, wanted in enumerate(view.desired_markets)
        if wanted is PriceModel.ON_DEMAND
        and (replica := live.get(slot)) is not None
        and replica.market is PriceModel.SPOT
    ]


def _spot_returns(view: DeploymentView, policy: RebalancePolicy) -> list[Action]:
    if view.spot_available is False:
        return []
    delta = _monthly_delta(view)
    if delta is None and not policy.try_spot_when_price_unknown:
        return []
    if delta is not None and delta <= 0.0:
        return []
    live = _live_by_slot(view)
    why = f"spot is cheaper by {delta:.2f} USD/month" if delta is not None else "spot price unknown, trying"
    return [
        Action(
            kind="return_to_spot",
            deployment=view.name,
            reason=f"on-demand fallback {replica.id} in spot slot {slot}: {why}",
            usd_saved_per_month=delta or 0.0,
            drain_budget_s=_drain_s(view),
            slot=slot,
            old_replica_id=replica.id,
            market=PriceModel.SPOT,
        )
        for slot, wanted in enumerate(view.desired_markets)
        if wanted is PriceModel.SPOT
        and (replica := live.get(slot)) is not None
        and replica.market is PriceModel.ON_DEMAND
    ]


def current_usd_per_hour(view: DeploymentView) -> float | None:
    """What the live replicas cost now (None when a price is unknown)."""
    total = 0.0
    for replica in view.replicas:
        if not replica.live:
            continue
        price = view.spot_usd_per_hour if replica.market is PriceModel.SPOT else view.on_demand_usd_per_hour
        if price is None:
            return None
        total += price
    return total


def _migration(view: DeploymentView, policy: RebalancePolicy, now: datetime) -> Action | None:
    alt = view.alternative
    current = current_usd_per_hour(view)
    if alt is None or not current:
        return None
    if (
        view.last_migration_at is not None
        and (now - view.last_migration_at).total_seconds() < policy.min_dwell_s
    ):
        return None
    proposed = alt.usd_per_hour * len(view.desired_markets)
    saving_fraction = (current - proposed) / current
    threshold = policy.migrate_threshold_fraction
    if view.previous_location == (alt.provider, alt.region):
        threshold += policy.hysteresis_fraction
    saved = (current - proposed) * HOURS_PER_MONTH
    if saving_fraction <= threshold or saved < policy.min_saving_usd_per_month:
        return None
    return Action(
        kind="migrate",
        deployment=view.name,
        reason=(
            f"{alt.provider}/{alt.region} {alt.instance_type} ({alt.price_model.value}) is "
            f"{saving_fraction:.0%} cheaper than {view.provider}/{view.region} (threshold {threshold:.0%})"
        ),
        usd_saved_per_month=saved,
        drain_budget_s=_drain_s(view),
        target=alt,
    )


def offer_from_candidate(candidate: Mapping[str, Any]) -> Offer:
    return Offer(
        provider=str(candidate["provider"]),
        region=str(candidate["region"]),
        instance_type=str(candidate["instance_type"]),
        price_model=PriceModel(str(candidate["price_model"])),
        usd_per_hour=float(candidate["usd_per_hour"]),
    )
