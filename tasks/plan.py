"""Prefect tasks around the planner (``thrifty.planner.service.plan_model``) and its artifacts."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from thrifty import runtime
from thrifty.planner.explain import explain_text
from thrifty.planner.service import plan_model
from thrifty.planner.types import Slo, Traffic
from thrifty.settings import get_settings


@task(name="plan-placement", cache_policy=NO_CACHE)
def plan_placement(
    model: str, slo: dict[str, Any], traffic: dict[str, Any], recorded: bool = False
) -> dict[str, Any]:
    """Plan ``model`` against the current catalog; returns the plan id and the decision record."""
    normalized = dict(slo)
    for key in ("providers", "regions"):
        if normalized.get(key) is not None:
            normalized[key] = tuple(normalized[key])
    result = plan_model(
        runtime.registry(), get_settings(), model, Slo(**normalized), Traffic(**traffic), recorded=recorded
    )
    return {"plan_id": result.plan_id, "record": result.decision.to_dict()}


_TABLE_KEYS: tuple[str, ...] = ("rank", "variant", "provider", "region", "instance_type", "option")
_TABLE_KEYS += ("latency_ms_p95_est", "machines", "usd_per_month", "usd_per_million_requests", "why_lost")


@task(name="publish-plan-artifacts", cache_policy=NO_CACHE)
def publish_plan_artifacts(plan_id: int, record: dict[str, Any], top: int = 10) -> dict[str, str]:
    """A table artifact of the top offers and a markdown artifact of the decision."""
    rows = [{k: c.get(k) for k in _TABLE_KEYS} for c in record["candidates"][:top]]
    table_id = create_table_artifact(
        key="price-compare-top-offers", table=rows, description=f"plan {plan_id}: cheapest offers at the SLO"
    )
    markdown = f"# Plan {plan_id}\n\n```text\n{explain_text(record, plan_id)}\n```\n"
    markdown_id = create_markdown_artifact(
        key="price-compare-decision", markdown=markdown, description=f"plan {plan_id}: decision record"
    )
    return {"table": str(table_id), "markdown": str(markdown_id)}
