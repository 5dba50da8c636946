"""Prices, plans and their explanation, reports."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from thrifty import read
from thrifty.api import ops
from thrifty.api.deps import Conf, Deployer, Limit, Offset, Page, Reg, Viewer, audit, page
from thrifty.api.ops import OperationView
from thrifty.api.routes.models import cli

router = APIRouter(tags=["prices and plans"])


@router.get("/prices", openapi_extra=cli("prices show"))
def prices(
    _: Viewer,
    registry: Reg,
    settings: Conf,
    cheapest: bool = False,
    vcpus: float | None = None,
    provider: str | None = Query(None, description="Comma-separated: aws,gcp,azure."),
    price_model: str | None = Query(None, description="on_demand, spot or serverless."),
    accelerator: str | None = None,
    limit: Limit = 20,
) -> read.PriceTable:
    """The price catalog (registry history, snapshot, or reference table), filtered."""
    from thrifty.catalog.refresh import parse_providers

    return read.prices(
        registry, settings, cheapest=cheapest, vcpus=vcpus,
        providers=parse_providers(provider) if provider else None,
        price_models=[price_model] if price_model else None, accelerator=accelerator, limit=limit,
    )  # fmt: skip


class RefreshRequest(BaseModel):
    parameters: dict[str, Any] = Field(default_factory=dict, description="Fields of PriceMonitorParams.")


@router.post("/prices/refresh", status_code=202, openapi_extra=cli("prices refresh"))
def refresh_prices(body: RefreshRequest, who: Deployer, registry: Reg) -> OperationView:
    """Refresh the price catalog (and re-plan) through the price-monitor flow."""
    row = ops.start(registry, "refresh-prices", "prices", {"refresh": True, **body.parameters}, who.name)
    audit(registry, who, "prices.refresh", "prices", None, {"operation": row.id})
    return ops.view(row)


class PlanRequest(BaseModel):
    """The same choices as ``thrifty plan NAME``."""

    model: str
    p95_ms: float = Field(..., gt=0, description="p95 latency target in ms.")
    rps: float = Field(..., gt=0, description="Target traffic in requests per second.")
    providers: list[str] | None = None
    regions: list[str] | None = None
    spot_ok: bool = True
    max_interruption: str | None = None
    min_fidelity: float | None = None
    accepted_only: bool = False
    serverless: bool = False
    accelerator: str | None = None
    active_fraction: float = Field(1.0, gt=0, le=1)
    scale_to_zero: bool = False
    version: int | None = None
    recorded: bool = Field(False, description="Recorded MiniLM numbers (demo, no benchmarks).")


class PlanMade(BaseModel):
    plan_id: int
    record: dict[str, Any]


@router.post("/plans", status_code=201, openapi_extra=cli("plan make"))
async def make_plan(body: PlanRequest, who: Deployer, registry: Reg, settings: Conf) -> PlanMade:
    """Plan a model's placement (cheapest variant × offer meeting the SLO) and store the decision."""
    from thrifty.planner.service import plan_model
    from thrifty.planner.types import Slo, Traffic

    slo = Slo(
        latency_ms_p95=body.p95_ms, min_fidelity=body.min_fidelity, accepted_only=body.accepted_only,
        max_interruption_bucket=body.max_interruption,
        providers=tuple(body.providers) if body.providers else None,
        regions=tuple(body.regions) if body.regions else None, spot_ok=body.spot_ok,
        serverless_ok=body.serverless, accelerator=body.accelerator,
    )  # fmt: skip
    traffic = Traffic(rps=body.rps, active_fraction=body.active_fraction, scale_to_zero=body.scale_to_zero)
    result = await run_in_threadpool(
        plan_model, registry, settings, body.model, slo, traffic, version=body.version, recorded=body.recorded
    )
    audit(registry, who, "plans.make", body.model, None, {"plan_id": result.plan_id})
    return PlanMade(plan_id=result.plan_id, record=result.decision.to_dict())


@router.get("/plans", openapi_extra=cli("plan list"))
def list_plans(_: Viewer, registry: Reg, offset: Offset = 0, limit: Limit = 20) -> Page[read.PlanSummary]:
    """The newest stored plans."""
    from sqlalchemy import func, select

    from thrifty.registry import Plan

    with registry.session() as s:
        total = int(s.scalar(select(func.count()).select_from(Plan)) or 0)
    return page(read.plans(registry, offset + limit)[offset:], offset, limit, total=total)


class PlanExplained(BaseModel):
    id: int
    model_version_id: int | None
    explanation: str
    record: dict[str, Any]
    candidates_total: int


@router.get("/plans/{plan_id}", openapi_extra=cli("plan explain"))
def explain_plan(
    plan_id: int, _: Viewer, registry: Reg, candidates: int = Query(50, ge=0, le=500)
) -> PlanExplained:
    """A stored decision with the text a person can check by hand (``candidates``: how many rows)."""
    found = read.plan(registry, plan_id)
    record = dict(found.record)
    rows = list(record.get("candidates") or [])
    record["candidates"] = rows[:candidates]
    return PlanExplained(
        id=found.id, model_version_id=found.model_version_id, explanation=found.explanation(),
        record=record, candidates_total=len(rows),
    )  # fmt: skip


@router.get("/reports/{ref}", openapi_extra=cli("report"))
def report(ref: str, _: Viewer, registry: Reg) -> dict[str, Any]:
    """A deployment's (or plan's: ``7`` / ``plan:7``) plan summary: chosen vs the naive baseline."""
    from thrifty import report as reporting

    data = reporting.collect(registry, ref)
    return {
        "model": data.model, "plan_id": data.plan_id, "deployment": data.deployment, "chosen": data.chosen,
        "baseline": data.baseline, "variants": data.variants, "summary_markdown": reporting.summary_markdown(data),
    }  # fmt: skip
