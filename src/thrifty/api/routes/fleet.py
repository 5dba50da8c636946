"""Fleet questions: costs, alerts, simulate, policies, targets, storage tiering."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from thrifty import read
from thrifty.api import ops
from thrifty.api.deps import Conf, Deployer, Reg, Viewer, audit
from thrifty.api.ops import OperationView
from thrifty.api.routes.models import cli
from thrifty.errors import ConfigError

router = APIRouter(tags=["fleet"])
Days = Annotated[float, Query(gt=0, le=90, description="Days of request log to learn from.")]


@router.get("/costs", openapi_extra=cli("costs"))
def costs(_: Viewer, registry: Reg, name: str | None = None) -> read.CostsView:
    """Spend this month from the ledger: month to date, forecast, $/1M requests on the reservation and
    usage bases, next to the plan's estimate and the naive baseline (``thrifty costs [NAME]``)."""
    return read.costs(registry, name)


@router.get("/alerts", openapi_extra=cli("alerts"))
def alerts(
    _: Viewer, registry: Reg, name: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[read.AlertView]:
    """Anomalies the monitor flow found (cost per request, p95 latency, error rate, traffic), newest first."""
    return read.alerts(registry, name, limit=limit)


@router.get("/recommendations", openapi_extra=cli("recommend"))
async def recommendations(
    _: Viewer, registry: Reg, settings: Conf, name: str | None = None, days: Days = 7.0
) -> read.RecommendationsView:
    """Cheaper set-ups from the traffic each live deployment really gets: $/month saved, evidence, how
    to apply (``thrifty recommend [NAME]``)."""
    return await run_in_threadpool(read.recommendations, registry, settings, name, days=days)


@router.post("/recommendations/{name}/{kind}/apply", status_code=202, openapi_extra=cli("recommend"))
async def apply_recommendation(
    name: str, kind: str, who: Deployer, registry: Reg, settings: Conf, days: Days = 7.0
) -> OperationView:
    """Run the flow that applies deployment ``name``'s recommendation of ``kind`` (as
    ``thrifty recommend NAME --apply KIND`` does); 400 with the command when no flow applies it."""
    answer = await run_in_threadpool(read.recommendations, registry, settings, name, days=days)
    rec = read.find_recommendation(answer, name, kind)
    if rec.flow is None:
        raise ConfigError(
            f"no flow applies the {kind!r} recommendation of {name!r} yet", hint=f"run: {rec.command}"
        )
    row = ops.start(registry, "recommendation", name, rec.parameters, who.name, flow=rec.flow)
    details = {"operation": row.id, "kind": kind, "usd_saved_per_month": rec.usd_saved_per_month}
    audit(registry, who, "recommendations.apply", name, None, details | {"parameters": rec.parameters})
    return ops.view(row)


class SimulateRequest(BaseModel):
    """Replay deployments' own request logs (a trace file on the server is not accepted)."""

    deployments: list[str] = Field(..., min_length=1, max_length=50)
    days: float = Field(7.0, gt=0, le=90)
    policies: list[str] | None = Field(None, description="Policy names; default: the CLI's.")
    usd_per_gib_hour: float | None = Field(None, ge=0)


@router.post("/simulate", openapi_extra=cli("simulate"))
async def simulate(body: SimulateRequest, _: Viewer, registry: Reg) -> dict[str, Any]:
    """Cold starts vs wasted memory of each hibernation policy on the deployments' request logs."""
    return await run_in_threadpool(_simulate, body, registry)


def _simulate(body: SimulateRequest, registry: Any) -> dict[str, Any]:
    from thrifty.policies import get_policy
    from thrifty.policies.commands import DEFAULT_POLICIES
    from thrifty.policies.simulate import compare
    from thrifty.policies.trace_files import load_request_log

    for name in body.deployments:
        registry.get_deployment(name)
    loaded = load_request_log(registry, body.deployments, datetime.now(UTC), body.days)
    if loaded.minutes == 0:
        raise ConfigError("the request logs are empty", hint="replay deployments that served requests")
    chosen = [get_policy(name) for name in (body.policies or DEFAULT_POLICIES)]
    summaries = compare(loaded, chosen, usd_per_gib_hour=body.usd_per_gib_hour)
    return {"source": loaded.source, "functions": loaded.n_functions, "minutes": loaded.minutes,
            "policies": [s.row() for s in summaries]}  # fmt: skip


@router.get("/policies", openapi_extra=cli("policies"))
def policies(_: Viewer) -> list[dict[str, Any]]:
    """The hibernation policies and their default settings."""
    from thrifty.policies import POLICIES, policy_class

    rows = []
    for name in POLICIES:
        cls = policy_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append({"name": name, "summary": doc[0] if doc else "", "settings": dict(cls().settings())})
    return rows


@router.get("/targets", openapi_extra=cli("targets"))
def targets(_: Viewer) -> list[dict[str, Any]]:
    """The deploy targets: name, kind, clouds, the block that configures it."""
    from thrifty.targets import all_targets

    return [
        {"name": d.name, "kind": d.kind.value, "clouds": list(d.clouds), "block": d.default_block,
         "interruption_notice_s": d.interruption_notice_s, "description": d.description}
        for d in all_targets().values()
    ]  # fmt: skip


class StorageRules(BaseModel):
    cloud: str = "aws"
    warm_after_days: float = Field(30.0, ge=0)
    cold_after_days: float = Field(90.0, ge=0)
    gc_grace_days: float = Field(7.0, ge=0)
    horizon_days: float = Field(180.0, gt=0)


@router.post("/storage/plan", openapi_extra=cli("storage plan"))
async def storage_plan(body: StorageRules, _: Viewer, registry: Reg) -> dict[str, Any]:
    """What would move between storage tiers or be deleted, and what it saves. Changes nothing."""
    from thrifty import runtime
    from thrifty.artifacts.lifecycle import LifecycleRules, plan_for_store

    rules = LifecycleRules(**body.model_dump())
    result = await run_in_threadpool(plan_for_store, runtime.store(), registry, rules, datetime.now(UTC))
    data: dict[str, Any] = result.to_dict()
    data["actions"] = list(data.get("actions") or [])[:500]
    return data


@router.post("/storage/apply", status_code=202, openapi_extra=cli("storage apply"))
def storage_apply(body: StorageRules, who: Deployer, registry: Reg) -> OperationView:
    """Plan and execute storage tiering (the storage-tiering flow with apply on)."""
    params = body.model_dump() | {"apply": True}
    row = ops.start(registry, "storage-apply", "storage", params, who.name)
    audit(registry, who, "storage.apply", "storage", None, {"operation": row.id, "parameters": params})
    return ops.view(row)
