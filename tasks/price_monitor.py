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
from thrifty.policies.pricewatch import cheaper_offer, replan_inputs
from thrifty.settings import get_settings

EVENT_NAME = "thrifty.plan.cheaper"
LIVE_STATES = ("running", "degraded", "pending", "hibernated")


@task(name="list-planned-deployments", cache_policy=NO_CACHE)
def list_planned_deployments() -> list[str]:
    """Live deployments that came from a plan (only those can be re-planned)."""
    rows = runtime.registry().list_deployments()
    return [d.name for d in rows if d.plan_id is not None and d.state in LIVE_STATES]


@task(name="replan-deployment", cache_policy=NO_CACHE)
def replan_deployment(
    name: str, threshold_fraction: float, min_saving_usd_per_month: float
) -> dict[str, Any]:
    """Re-run the planner for ``name``'s model, SLO and traffic at today's prices; compare."""
    from thrifty.catalog.store import load_catalog
    from thrifty.planner.decision import plan
    from thrifty.planner.types import Slo, Traffic, perf_from_registry, recorded_minilm

    registry, settings = runtime.registry(), get_settings()
    stored = registry.get_plan(registry.get_deployment(name).plan_id)  # type: ignore[arg-type]
    inputs = replan_inputs(stored.record)
    perf = recorded_minilm() if inputs["recorded"] else perf_from_registry(registry, inputs["model"])
    catalog = load_catalog(settings, registry)
    decision = plan(
        perf,
        catalog.table,
        Slo(**inputs["slo"]),
        Traffic(**inputs["traffic"]),
        model=inputs["model"],
        catalog_origin=catalog.origin,
    ).to_dict()
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
