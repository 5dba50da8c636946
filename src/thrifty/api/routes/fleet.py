"""Fleet questions: costs, alerts, simulate, policies, targets, storage tiering."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from thrifty import read
from thrifty.access import Principal
from thrifty.api import ops
from thrifty.api.deps import Conf, Deployer, Reg, Viewer, audit
from thrifty.api.ops import OperationView
from thrifty.api.routes.models import cli
from thrifty.errors import ConfigError
from thrifty.monitor import applied
from thrifty.registry import Registry

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


class AppliedAnswer(BaseModel):
    """An apply or undo: the record (what was in force before) and the flow run's operation, if one
    started (a hibernation policy changes at once: no operation)."""

    applied: read.AppliedView
    operation: OperationView | None


def _starter(registry: Registry, kind: str, name: str, who: Principal) -> tuple[applied.Start, list[str]]:
    """A ``start(flow, parameters)`` that runs the flow as an API operation (locked per name)."""
    started: list[str] = []

    def start(flow: str, parameters: dict[str, Any]) -> str:
        started.append(ops.start(registry, kind, name, parameters, who.name, flow=flow).id)
        return started[-1]

    return start, started


def _answer(registry: Registry, row: Any, started: list[str]) -> AppliedAnswer:
    operation = ops.view(ops.get(registry, started[-1])) if started else None
    return AppliedAnswer(applied=read.applied_view(row), operation=operation)


@router.post("/recommendations/{name}/{kind}/apply", status_code=202, openapi_extra=cli("recommend"))
async def apply_recommendation(
    name: str, kind: str, who: Deployer, registry: Reg, settings: Conf, days: Days = 7.0
) -> AppliedAnswer:
    """Apply deployment ``name``'s recommendation of ``kind`` (as ``thrifty recommend NAME --apply
    KIND`` does): a redeploy starts its flow run (the operation), a hibernation policy is stored for
    the deployment at once (the sweep uses it). Recorded, so ``…/undo`` can reverse it; audited."""
    answer = await run_in_threadpool(read.recommendations, registry, settings, name, days=days)
    rec = read.find_recommendation(answer, name, kind)
    start, started = _starter(registry, "recommendation", name, who)
    row = await run_in_threadpool(applied.apply, registry, rec, who.name, start)
    return _answer(registry, row, started)


@router.post("/recommendations/{name}/undo", status_code=202, openapi_extra=cli("recommend"))
async def undo_recommendation(
    name: str, who: Deployer, registry: Reg, applied_id: int | None = None
) -> AppliedAnswer:
    """Undo deployment ``name``'s latest applied recommendation (``thrifty recommend NAME --undo``):
    a rollback-deployment run to the revision live before it, or its previous hibernation policy.
    400/404 with the fix when nothing is applied, it was undone already, or that revision is gone."""
    start, started = _starter(registry, "undo", name, who)
    row = await run_in_threadpool(applied.undo, registry, name, who.name, start, applied_id)
    return _answer(registry, row, started)


@router.get("/recommendations/{name}/applied", openapi_extra=cli("recommend"))
def applied_recommendations(
    name: str, _: Viewer, registry: Reg, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> list[read.AppliedView]:
    """Recommendations applied to ``name``, newest first, with what undo would return to."""
    return read.applied_recommendations(registry, name, limit)


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
