"""Prefect tasks of the ``hibernation-sweep`` flow: decide per deployment, act, record the event.

The decision is ``thrifty.policies.sweep.sweep_decision`` (pure); these tasks only gather its
inputs from the registry (request log, plan, state) and write its outcome back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.providers import TargetChoice, build_provider
from thrifty import runtime
from thrifty.policies.chosen import with_choice
from thrifty.policies.sweep import POLICY_EVENT_KIND, DeploymentFacts, SweepConfig, sweep_decision
from thrifty.providers.base import serving_name
from thrifty.providers.operate import record_status
from thrifty.registry import Registry
from thrifty.registry.models import Deployment
from thrifty.targets import TargetKind, target

EVENT_KIND = POLICY_EVENT_KIND
_SAME_DECISION_KEYS = ("do", "action", "policy", "warm_until", "next_prewarm_at", "warm_floor")


@task(name="list-sweep-deployments", cache_policy=NO_CACHE)
def list_sweep_deployments(only: str | None = None) -> list[dict[str, str]]:
    """Every deployment (or just ``only``) with its provider and state."""
    rows = runtime.registry().list_deployments()
    return [
        {"name": d.name, "provider": d.provider, "state": d.state} for d in rows if only in (None, d.name)
    ]


def _facts(deployment: Deployment, registry: Registry) -> DeploymentFacts:
    idle_usd_per_hour = None
    if deployment.plan_id is not None:
        chosen = registry.get_plan(deployment.plan_id).chosen or {}
        if chosen.get("usd_per_hour") is not None:
            idle_usd_per_hour = float(chosen["usd_per_hour"])
    cold_start_s = (deployment.spec or {}).get("serving", {}).get("cold_start_s")
    return DeploymentFacts(
        name=deployment.name,
        state=deployment.state,
        changed_at=deployment.updated_at,
        idle_usd_per_hour=idle_usd_per_hour,
        cold_start_s=float(cold_start_s) if cold_start_s is not None else None,
        serverless=target(deployment.provider).kind is TargetKind.SERVERLESS,
        warm_floor=int(deployment.replicas or 0),
    )


@task(name="decide-hibernation", cache_policy=NO_CACHE)
def decide_hibernation(name: str, config: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The policy's answer for one deployment now: wake, hibernate or none, with the reason."""
    registry = runtime.registry()
    now = now or datetime.now(UTC)
    settings = with_choice(registry, name, SweepConfig(**config))  # a policy chosen for it wins
    since = now - timedelta(minutes=settings.history_min)
    requests = [r.at for r in registry.requests_since(name, since)]
    decision = sweep_decision(_facts(registry.get_deployment(name), registry), requests, now, settings)
    row: dict[str, Any] = decision.row()
    return row | {"decided_at": now.isoformat(), "requests_seen": len(requests)}


@task(name="apply-hibernation", cache_policy=NO_CACHE)
def apply_hibernation(
    target: TargetChoice, name: str, do: str, warm_floor: int | None = None
) -> dict[str, Any]:
    """Hibernate or wake ``name`` on its target (this machine's too: it is a target like the others);
    ``do == "floor"``: set a serverless deployment's warm floor to ``warm_floor`` (its scale call)."""
    provider = build_provider(target)
    serving = serving_name(runtime.registry().get_deployment(name))  # NAME-rN after an update
    if do == "floor":
        status = provider.scale(serving, int(warm_floor or 0))
    else:
        status = provider.hibernate(serving) if do == "hibernate" else provider.wake(serving)
    if target.provider != "local":  # the local provider writes the registry itself
        record_status(runtime.registry(), name, status)
    return {
        "name": name,
        "state": str(status.state),
        "replicas_ready": int(status.replicas_ready),
        "replicas_desired": int(status.replicas_desired),
    }


@task(name="record-hibernation-decision", cache_policy=NO_CACHE)
def record_hibernation_decision(row: dict[str, Any]) -> bool:
    """A ``policy-decision`` deployment event, unless it repeats the last one word for word."""
    registry = runtime.registry()
    name = row["deployment"]
    previous = [e for e in registry.list_events(name) if e.kind == EVENT_KIND]
    if row["do"] == "none" and previous and _same(previous[-1].details, row):
        return False
    registry.add_event(name, EVENT_KIND, row["reason"], details=row)
    return True


def _same(details: dict[str, Any] | None, row: dict[str, Any]) -> bool:
    return all((details or {}).get(k) == row.get(k) for k in _SAME_DECISION_KEYS)
