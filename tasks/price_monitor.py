"""Prefect tasks of the ``price-monitor`` flow: re-plan a live deployment at the fresh prices and
announce a cheaper offer (``thrifty.plan.cheaper``). The comparison is
``thrifty.policies.pricewatch.cheaper_offer`` (pure); prices are refreshed by ``tasks.prices``.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from thrifty import runtime
from thrifty.errors import ConfigError
from thrifty.policies.pricewatch import cheaper_offer
from thrifty.settings import get_settings
from thrifty.states import state_of

EVENT_NAME = "thrifty.plan.cheaper"


@task(name="list-planned-deployments", cache_policy=NO_CACHE)
def list_planned_deployments() -> list[str]:
    """Live deployments that came from a plan (only those can be re-planned)."""
    rows = runtime.registry().list_deployments()
    return [d.name for d in rows if d.plan_id is not None and state_of(d.state).exists]


@task(name="replan-deployment", cache_policy=NO_CACHE)
def replan_deployment(
    name: str, threshold_fraction: float, min_saving_usd_per_month: float
) -> dict[str, Any]:
    """Re-run the planner for ``name``'s model, SLO and traffic at today's prices; compare."""
    from thrifty.planner.service import replan

    registry = runtime.registry()
    plan_id = registry.get_deployment(name).plan_id
    if plan_id is None:
        raise ConfigError(f"deployment {name!r} was not deployed from a plan", hint="nothing to re-plan")
    stored = registry.get_plan(plan_id)
    decision = replan(registry, get_settings(), plan_id).to_dict()
    offer = cheaper_offer(
        name,
        stored.chosen,
        stored.usd_per_month,
        decision,
        threshold_fraction=threshold_fraction,
        min_saving_usd_per_month=min_saving_usd_per_month,
    )
    best = decision["chosen"]
    summary = {"deployment": name, "plan_id": stored.id, "best_usd_per_month": float(best["usd_per_month"])}
    return summary | {"cheaper": offer.payload() if offer else None}


@task(name="announce-cheaper-plan", cache_policy=NO_CACHE)
def announce_cheaper_plan(offer: dict[str, Any]) -> str | None:
    """Emit ``thrifty.plan.cheaper`` (an automation can re-deploy) and record it on the deployment."""
    name = offer["deployment"]
    best = offer["best"]
    reason = (
        f"{best['provider']} {best['instance_type']} {best['region']} ({best['price_model']}) is "
        f"${offer['saving_usd_per_month']:,.2f}/month ({offer['saving_fraction']:.0%}) cheaper"
    )
    runtime.registry().add_event(
        name, "cheaper-plan", reason, usd_saved_per_month=float(offer["saving_usd_per_month"]), details=offer
    )
    event = emit_event(
        event=EVENT_NAME,
        resource={"prefect.resource.id": f"thrifty.deployment.{name}", "prefect.resource.name": name},
        payload=offer,
    )
    return str(event.id) if event is not None else None
