"""Fleet questions: costs, alerts, simulate, policies, targets, storage tiering."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from thrifty import read
from thrifty.api import ops
from thrifty.api.deps import Deployer, Reg, Viewer, audit
from thrifty.api.ops import OperationView
from thrifty.api.routes.models import cli
from thrifty.errors import ConfigError, NotAvailableError

router = APIRouter(tags=["fleet"])

#: the spend ledger and the alert store are being built (issue: fleet metrics + spend ledger)
LEDGER_MODULE = "thrifty.costs"


class DeploymentCost(BaseModel):
    name: str
    provider: str
    state: str
    planned_usd_per_month: float | None


class CostReport(BaseModel):
    at: datetime
    planned_usd_per_month: float
    deployments: list[DeploymentCost]
    #: None until the spend ledger exists; ``ledger`` then says why
    actual_usd_month_to_date: float | None
    ledger: str


@router.get("/costs", openapi_extra=cli("costs"))
def costs(_: Viewer, registry: Reg) -> CostReport:
    """What each deployment's plan costs per month; actual spend once the ledger exists."""
    rows = [
        DeploymentCost(name=d.name, provider=d.provider, state=d.state, planned_usd_per_month=d.usd_per_month)
        for d in read.deployments(registry)
        if d.state != "deleted"
    ][:1000]
    found = importlib.util.find_spec(LEDGER_MODULE) is not None
    return CostReport(
        at=datetime.now(UTC),
        planned_usd_per_month=float(sum(r.planned_usd_per_month or 0.0 for r in rows)),
        deployments=rows,
        actual_usd_month_to_date=None,
        ledger="ledger module present but not wired to the API yet"
        if found
        else "no spend ledger in this thrifty yet: the planned $/month is what the plans chose",
    )


@router.get("/alerts", openapi_extra=cli("alerts"))
def alerts(_: Viewer) -> dict[str, Any]:
    """Cost / latency / error anomalies (needs the fleet metrics store; 501 until it exists)."""
    raise NotAvailableError(
        "no alert store in this thrifty yet: anomalies need the fleet metrics rollups",
        hint="update thrifty once the monitoring work lands; `thrifty events NAME` shows cheaper-plan events",
    )


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
