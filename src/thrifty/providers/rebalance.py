"""Spot rebalancing: pure decisions (``decide``) and a small executor (``execute``).

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
``execute`` passes to ``record`` — the flow writes them as deployment events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from thrifty.errors import CapacityError, ProviderError, QuotaExceededError
from thrifty.providers.base import DeploymentStatus, DeploySpec, PriceModel, Provider

if TYPE_CHECKING:
    from thrifty.registry import Registry

HOURS_PER_MONTH = 730.0
LIVE_STATES = ("pending", "running")
#: seconds between a provider's interruption notice and the reclaim = the drain budget
NOTICE_S: Mapping[str, int] = {"aws": 120, "gcp": 30, "azure": 30, "kubernetes": 30}

ActionKind = Literal["replace", "restore_floor", "return_to_spot", "migrate"]


@dataclass(frozen=True)
class Replica:
    """One copy of a deployment on a VM provider, as the provider reports it."""

    id: str
    slot: int
    market: PriceModel
    state: str
    fallback: bool = False
    retired: bool = False
    endpoint_url: str | None = None
    launched_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES and not self.retired


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
    return NOTICE_S.get(view.provider, 30)


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


# -- execution ---------------------------------------------------------------------------------
class SpotCapable(Protocol):
    """What a VM provider offers the executor (AwsProvider implements it)."""

    name: ClassVar[str]

    def replicas(self, name: str) -> list[Replica]: ...

    def desired_markets_of(self, name: str) -> list[PriceModel]: ...

    def launch_replica(
        self, name: str, slot: int, market: PriceModel, *, replaces: str = "", allow_fallback: bool = True
    ) -> Replica: ...

    def retire_replica(self, name: str, replica_id: str) -> None: ...


@dataclass
class Outcome:
    action: Action
    status: Literal["done", "skipped", "failed", "proposed"]
    detail: str = ""
    new_replica_id: str | None = None
    drained_s: float = 0.0


@dataclass
class Executor:
    """Carries out actions on one provider: start new → health-check → switch → drain old."""

    provider: SpotCapable
    health_check: Callable[[Replica], bool]
    switch_traffic: Callable[[str, Sequence[Replica]], None] = lambda name, replicas: None
    sleep: Callable[[float], None] = field(default=lambda seconds: None)
    migrate: Callable[[Action], None] | None = None
    drain_wait_s: float = 10.0
    health_timeout_s: float = 300.0
    health_poll_s: float = 5.0

    def run(self, actions: Iterable[Action]) -> list[Outcome]:
        return [self._one(action) for action in actions]

    def _one(self, action: Action) -> Outcome:
        if action.kind == "migrate":
            return self._migrate(action)
        assert action.slot is not None and action.market is not None
        try:
            new = self.provider.launch_replica(
                action.deployment,
                action.slot,
                action.market,
                replaces=action.old_replica_id or f"{action.kind}-{action.slot}",
                allow_fallback=action.kind == "replace",
            )
        except CapacityError as exc:
            return Outcome(action, "skipped", f"no capacity: {exc.message}")
        if not self._wait_healthy(action.deployment, new):
            self.provider.retire_replica(action.deployment, new.id)
            return Outcome(action, "failed", f"new replica {new.id} failed its health check")
        drained = self._switch_and_drain(action, new)
        detail = (
            f"{new.id} ({new.market.value}{', fallback' if new.fallback else ''}) serves slot {action.slot}"
        )
        return Outcome(action, "done", detail, new_replica_id=new.id, drained_s=drained)

    def _wait_healthy(self, name: str, new: Replica) -> bool:
        """Poll the provider's view of ``new`` until the health check passes or time runs out."""
        for _ in range(max(1, int(self.health_timeout_s / self.health_poll_s))):
            current = next((r for r in self.provider.replicas(name) if r.id == new.id), new)
            if current.live and self.health_check(current):
                return True
            self.sleep(self.health_poll_s)
        return False

    def _switch_and_drain(self, action: Action, new: Replica) -> float:
        serving = [
            r for r in self.provider.replicas(action.deployment) if r.live and r.id != action.old_replica_id
        ]
        self.switch_traffic(action.deployment, serving)
        if action.old_replica_id is None:
            return 0.0
        drain_s = min(float(action.drain_budget_s), self.drain_wait_s)
        self.sleep(drain_s)
        self.provider.retire_replica(action.deployment, action.old_replica_id)
        return drain_s

    def _migrate(self, action: Action) -> Outcome:
        if self.migrate is None:
            return Outcome(action, "proposed", "no target configured for the migration; recorded only")
        try:
            self.migrate(action)
        except ProviderError as exc:
            return Outcome(action, "failed", exc.message)
        return Outcome(action, "done", f"moved to {action.target}")


def view_of(
    provider: SpotCapable,
    name: str,
    *,
    region: str,
    noticed_ids: Iterable[str] = (),
    **prices_and_history: object,
) -> DeploymentView:
    """The view of one deployment as the provider reports it; prices/history from the caller."""
    view = DeploymentView(
        name=name,
        provider=provider.name,
        region=region,
        desired_markets=tuple(provider.desired_markets_of(name)),
        replicas=tuple(provider.replicas(name)),
        noticed_ids=frozenset(noticed_ids),
    )
    return replace(view, **prices_and_history)  # type: ignore[arg-type]


def deploy_first_available(
    candidates: Sequence[DeploySpec], provider_for: Callable[[DeploySpec], Provider]
) -> tuple[DeploySpec, DeploymentStatus, list[str]]:
    """Deploy the first candidate (in plan order) that has capacity and quota.

    Returns (the spec deployed, its status, why each earlier candidate was skipped). A provider's
    failed deploy cleans up after itself, so skipping a candidate leaves nothing behind.
    """
    skipped: list[str] = []
    for spec in candidates:
        try:
            return spec, provider_for(spec).deploy(spec), skipped
        except (CapacityError, QuotaExceededError) as exc:
            skipped.append(f"{spec.region}/{spec.instance_type}/{spec.price_model.value}: {exc.message}")
    raise CapacityError(
        f"no candidate of the plan could be deployed ({len(candidates)} tried)",
        hint="; ".join(skipped) or "the plan has no candidates",
    )


# -- plans → specs and offers ------------------------------------------------------------------
def spec_from_candidate(
    candidate: Mapping[str, Any],
    *,
    name: str,
    model_name: str,
    variant_id: int,
    artifact_sha256: str,
    plan_id: int | None = None,
) -> DeploySpec:
    """A DeploySpec for one candidate of a planner decision record (``chosen`` or ``candidates[i]``)."""
    machines = float(candidate.get("machines") or 1.0)
    floor = float(candidate.get("floor_machines") or 0.0)
    replicas = max(1, math.ceil(machines - 1e-9))
    return DeploySpec(
        name=name,
        model_name=model_name,
        variant_id=variant_id,
        artifact_sha256=artifact_sha256,
        region=str(candidate.get("zone") or candidate["region"]),
        instance_type=str(candidate["instance_type"]),
        price_model=PriceModel(str(candidate["price_model"])),
        replicas=replicas,
        on_demand_floor=min(replicas, math.ceil(floor - 1e-9)),
        plan_id=plan_id,
    )


def candidates_in_order(record: Mapping[str, Any], provider: str | None = None) -> list[dict[str, Any]]:
    """The chosen candidate, then the other feasible ones of the same variant (plan order, no repeats)."""
    chosen = dict(record["chosen"])
    out, seen = [], set()
    for candidate in [chosen, *record.get("candidates", [])]:
        key = (candidate["provider"], candidate.get("zone") or candidate["region"], candidate["instance_type"],
               candidate["price_model"])  # fmt: skip
        if (
            key in seen
            or candidate.get("feasible") is False
            or candidate.get("variant") != chosen.get("variant")
        ):
            continue
        if provider is not None and candidate["provider"] != provider:
            continue
        seen.add(key)
        out.append(dict(candidate))
    return out


def offer_from_candidate(candidate: Mapping[str, Any]) -> Offer:
    return Offer(
        provider=str(candidate["provider"]),
        region=str(candidate["region"]),
        instance_type=str(candidate["instance_type"]),
        price_model=PriceModel(str(candidate["price_model"])),
        usd_per_hour=float(candidate["usd_per_hour"]),
    )


# -- one pass over one deployment, recorded in the registry ----------------------------------
@dataclass(frozen=True)
class RebalanceContext:
    """What the registry knows about a deployment: its plan's prices, history and a better offer."""

    on_demand_usd_per_hour: float | None = None
    spot_usd_per_hour: float | None = None
    last_migration_at: datetime | None = None
    previous_location: tuple[str, str] | None = None
    alternative: Offer | None = None


def context_from_registry(registry: Registry, name: str) -> RebalanceContext:
    """Prices from the deployment's plan; the newest plan for the same model as the alternative."""
    deployment = registry.get_deployment(name)
    od = spot = None
    alternative = None
    if deployment.plan_id is not None:
        plan = registry.get_plan(deployment.plan_id)
        chosen = plan.chosen or {}
        od = _float(chosen.get("on_demand_usd_per_hour"))
        spot = _float(chosen.get("usd_per_hour")) if chosen.get("price_model") == "spot" else None
        newest = next((p for p in registry.list_plans() if p.model_version_id == plan.model_version_id), None)
        if newest is not None and newest.id != plan.id and newest.chosen:
            where = (newest.chosen.get("provider"), newest.chosen.get("region"))
            if where != (deployment.provider, deployment.region):
                alternative = offer_from_candidate(newest.chosen)
    migrations = [
        e for e in registry.list_events(name) if e.kind == "rebalance.migrate" and e.details.get("done")
    ]
    last = migrations[-1] if migrations else None
    previous = tuple(last.details["from"]) if last and last.details.get("from") else None
    return RebalanceContext(
        on_demand_usd_per_hour=od,
        spot_usd_per_hour=spot,
        last_migration_at=last.at if last else None,
        previous_location=(str(previous[0]), str(previous[1])) if previous else None,
        alternative=alternative,
    )


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def record_outcomes(registry: Registry, outcomes: Iterable[Outcome], provider: str, region: str) -> None:
    """Each outcome becomes a deployment event with its reason and the dollars it saves.

    Two kinds repeat every pass while nothing changes and are not written again: a return to spot
    skipped because spot is still out, and the same migration proposal as the last event.
    """
    for outcome in outcomes:
        action = outcome.action
        done = outcome.status == "done"
        if outcome.status == "skipped" and action.kind == "return_to_spot":
            continue
        if outcome.status == "proposed" and _same_as_last(registry, action):
            continue
        details: dict[str, Any] = {
            "status": outcome.status,
            "done": done,
            "detail": outcome.detail,
            "slot": action.slot,
            "old_replica_id": action.old_replica_id,
            "new_replica_id": outcome.new_replica_id,
            "market": action.market.value if action.market else None,
            "drain_budget_s": action.drain_budget_s,
            "drained_s": outcome.drained_s,
            "from": [provider, region],
        }
        if action.target is not None:
            details["to"] = [action.target.provider, action.target.region, action.target.instance_type]
        registry.add_event(
            action.deployment,
            f"rebalance.{action.kind}",
            reason=f"{action.reason} → {outcome.status}: {outcome.detail}",
            usd_saved_per_month=float(action.usd_saved_per_month) if done else 0.0,
            details=details,
        )


def _same_as_last(registry: Registry, action: Action) -> bool:
    events = registry.list_events(action.deployment)
    return (
        bool(events)
        and events[-1].kind == f"rebalance.{action.kind}"
        and events[-1].reason.startswith(action.reason)
    )


def rebalance_deployment(
    executor: Executor,
    registry: Registry,
    name: str,
    *,
    region: str,
    noticed_ids: Iterable[str] = (),
    policy: RebalancePolicy | None = None,
    now: datetime | None = None,
) -> list[Outcome]:
    """Decide, execute and record one pass over deployment ``name`` on the executor's provider."""
    context = context_from_registry(registry, name)
    view = view_of(executor.provider, name, region=region, noticed_ids=noticed_ids, **vars(context))
    outcomes = executor.run(decide(view, policy, now))
    record_outcomes(registry, outcomes, executor.provider.name, region)
    return outcomes
