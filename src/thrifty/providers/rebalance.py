"""Spot rebalancing, carried out: the executor and its registry I/O (decisions: policies.rebalance).

One pass over one deployment (``rebalance_deployment``): read the plan's prices and the migration
history from the registry, ask the provider for its replicas, ``decide`` (pure), run each action
with the ``Executor`` (start new → health-check → switch traffic → drain old within the target's
notice), and record every outcome as a deployment event with its reason and dollars saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from thrifty.errors import CapacityError, ThriftyError
from thrifty.policies.rebalance import (
    Action,
    DeploymentView,
    Offer,
    RebalancePolicy,
    decide,
    offer_from_candidate,
)
from thrifty.providers.base import Replica, SpotCapable
from thrifty.targets import TargetKind, offer_kind

if TYPE_CHECKING:
    from thrifty.registry import Registry


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
        except ThriftyError as exc:  # no target block, a refused spec, a failed check: recorded
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
            alternative = _alternative(registry, deployment, newest.id, newest.chosen)
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


def _alternative(registry: Registry, deployment: Any, plan_id: int, chosen: dict[str, Any]) -> Offer | None:
    """The newer plan's offer where it is elsewhere; a serverless one is recorded, not migrated to."""
    if (chosen.get("provider"), chosen.get("region")) == (deployment.provider, deployment.region):
        return None
    if offer_kind(str(chosen.get("price_model", ""))) is TargetKind.SERVERLESS:
        reason = f"plan {plan_id} chose serverless ({chosen.get('provider')} {chosen.get('instance_type')})"
        last = next(reversed(registry.list_events(deployment.name)), None)
        if last is None or not last.reason.startswith(reason):
            registry.add_event(
                deployment.name,
                "rebalance.migrate",
                reason=f"{reason}: a VM deployment is not moved to serverless by a rebalance pass → skipped",
                details={"status": "skipped", "done": False, "plan_id": plan_id},
            )
        return None
    return offer_from_candidate(chosen)


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


def record_switch(registry: Registry, name: str, replicas: Sequence[Replica]) -> None:
    """Traffic switched: the registry (which the front door routes by) names the serving replicas."""
    endpoints = [r.endpoint_url for r in replicas if r.endpoint_url]
    deployment = registry.get_deployment(name)
    resources = {**deployment.resources, "endpoints": endpoints, "ids": [r.id for r in replicas]}
    registry.upsert_deployment(
        name, endpoint_url=endpoints[0] if endpoints else None, resources=resources, replicas=len(endpoints)
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
