"""Deployments: list, status, events; deploy / update / rollback / delete (flows), deploy-local, and
hibernate / wake / scale of any deployment (done here, at once: this machine's gateway, or the
deployment's cloud through the provider the front door uses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from thrifty import read
from thrifty.api import ops
from thrifty.api.deps import Conf, Deployer, Limit, Offset, Page, Reg, Viewer, audit, page
from thrifty.api.ops import OperationView
from thrifty.api.routes.models import cli
from thrifty.registry import Registry
from thrifty.settings import Settings

router = APIRouter(tags=["deployments"])


@router.get("/deployments", openapi_extra=cli("deployments"))
def list_deployments(
    _: Viewer, registry: Reg, provider: str | None = None, offset: Offset = 0, limit: Limit = 50
) -> Page[read.DeploymentView]:
    """Every deployment on every target: state, replicas, the plan it follows and its cost."""
    return page(read.deployments(registry, provider), offset, limit)


@router.get("/deployments/{name}")
def show_deployment(name: str, _: Viewer, registry: Reg) -> read.DeploymentView:
    return read.deployment(registry, name)


@router.get("/deployments/{name}/events", openapi_extra=cli("events"))
def deployment_events(
    name: str, _: Viewer, registry: Reg, offset: Offset = 0, limit: Limit = 100
) -> Page[read.EventView]:
    """A deployment's history (oldest first): deployed, live, hibernated, woken, rebalanced, …"""
    registry.get_deployment(name)
    return page(read.events(registry, name), offset, limit)


@router.get("/deployments/{name}/revisions", openapi_extra=cli("revisions"))
def revisions(name: str, _: Viewer, registry: Reg) -> list[dict[str, Any]]:
    """Every revision of a deployment, oldest first: variant, plan, target, state and why."""
    from thrifty.lifecycle import revision_rows

    rows = revision_rows(registry, name)
    if not rows:
        registry.get_deployment(name)  # 404 for an unknown name
    return rows


@router.get("/status", openapi_extra=cli("status"))
def local_status(_: Viewer, registry: Reg, settings: Conf) -> read.LocalStatus:
    """Deployments on the API's machine joined with the live gateway (rate and p95 over 5 min)."""
    return read.local_status(registry, settings)


class DeployRequest(BaseModel):
    """The deploy-model flow's form (``model`` and any other field of DeployModelParams)."""

    model: str = Field(..., description="A registered model name (upload it first: POST /models).")
    name: str | None = Field(None, description="Deployment name; default: the model's.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Other DeployModelParams fields.")


def _deploy_name(body: DeployRequest) -> str:
    from thrifty.ingest.core import check_name

    return check_name(body.name or body.model)


@router.post("/deployments", status_code=202, openapi_extra=cli("deploy"))
def deploy(body: DeployRequest, who: Deployer, registry: Reg) -> OperationView:
    """Plan and deploy a model (the deploy-model flow); one operation per name at a time (409)."""
    read.model(registry, body.model)  # registered models only: never a path on the API's machine
    name = _deploy_name(body)
    params = {**body.parameters, "model": body.model} | ({"name": body.name} if body.name else {})
    before = registry.find_deployment(name)
    row = ops.start(registry, "deploy", name, params, who.name)
    audit(
        registry, who, "deployments.deploy", name, _state(before), {"operation": row.id, "parameters": params}
    )
    return ops.view(row)


def _state(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "state": row.state,
        "replicas": row.replicas,
        "variant_id": row.variant_id,
        "plan_id": row.plan_id,
    }


class ChangeRequest(BaseModel):
    parameters: dict[str, Any] = Field(default_factory=dict, description="The flow's other fields.")


def _flow_op(kind: str, name: str, body: ChangeRequest, who: Any, registry: Registry) -> OperationView:
    before = registry.get_deployment(name)  # 404 for an unknown name, before anything starts
    params = {"name": name, **body.parameters}
    row = ops.start(registry, kind, name, params, who.name)
    audit(registry, who, f"deployments.{kind}", name, _state(before), {"operation": row.id})
    return ops.view(row)


@router.post("/deployments/{name}/update", status_code=202, openapi_extra=cli("update"))
def update(name: str, body: ChangeRequest, who: Deployer, registry: Reg) -> OperationView:
    """Roll a deployment to a new revision (the update-deployment flow)."""
    return _flow_op("update", name, body, who, registry)


@router.post("/deployments/{name}/rollback", status_code=202, openapi_extra=cli("rollback"))
def rollback(name: str, body: ChangeRequest, who: Deployer, registry: Reg) -> OperationView:
    """Go back to the previous revision (the rollback-deployment flow)."""
    return _flow_op("rollback", name, body, who, registry)


@router.delete("/deployments/{name}", status_code=202, openapi_extra=cli("delete"))
def delete(name: str, who: Deployer, registry: Reg) -> OperationView:
    """Delete a deployment and its cloud resources (the delete-deployment flow)."""
    return _flow_op("delete", name, ChangeRequest(), who, registry)


class LocalStatusView(BaseModel):
    name: str
    state: str
    replicas_desired: int
    replicas_ready: int
    endpoint_url: str | None


def _local(registry: Registry, settings: Settings, start: bool = True) -> Any:
    from thrifty.providers.local import LocalProvider

    return LocalProvider(registry, settings=settings, start_gateway=start)


def provider_for(request: Request) -> Callable[[Registry, str], Any]:
    """How the API reaches a cloud deployment's target: as the front door does
    (``provider_for_deployment``); ``app.state.build_provider`` may replace how a target's provider
    is built (a test's provider on moto or a replay double)."""
    from functools import partial

    from thrifty.providers.operate import provider_for_deployment

    build = getattr(request.app.state, "build_provider", None)
    return partial(provider_for_deployment, build=build)


CloudProvider = Annotated[Callable[[Registry, str], Any], Depends(provider_for)]


def _status_view(status: Any) -> LocalStatusView:
    return LocalStatusView(
        name=status.name, state=status.state, replicas_desired=status.replicas_desired,
        replicas_ready=status.replicas_ready, endpoint_url=status.endpoint_url,
    )  # fmt: skip


class LocalDeployRequest(BaseModel):
    ref: str = Field(..., description="A variant id or MODEL/VARIANT (see the variants list).")
    name: str | None = Field(None, description="Deployment name (the model name in URLs).")
    replicas: int = Field(1, ge=0, le=64, description="Replicas (0 = hibernated until a request).")


@router.post("/deployments/local", status_code=201, openapi_extra=cli("deploy-local"))
async def deploy_local(
    body: LocalDeployRequest, who: Deployer, registry: Reg, settings: Conf
) -> LocalStatusView:
    """Deploy a registered variant on the API's machine behind the gateway."""
    from thrifty.providers.local_commands import spec_for

    read.resolve_variant(registry, body.ref)  # registry refs only: never a path on the server
    spec = spec_for(body.ref, body.name, body.replicas, None)
    before = registry.find_deployment(spec.name)
    status = await run_in_threadpool(_local(registry, settings).deploy, spec)
    audit(registry, who, "deployments.deploy-local", spec.name, _state(before), _status_view(status))
    return _status_view(status)


async def _change(
    verb: str, name: str, who: Any, registry: Registry, settings: Settings, cloud: Any, *args: Any
) -> LocalStatusView:
    """``verb`` on the deployment's target: this machine's gateway, or its cloud through the
    provider the front door uses (VMs started/stopped or resized, a serverless warm floor set)."""
    before = registry.get_deployment(name)  # 404 for an unknown name, before anything is built
    if before.provider == "local":
        provider = _local(registry, settings, start=verb != "hibernate")
        status = await run_in_threadpool(getattr(provider, verb), name, *args)
    else:
        from thrifty.providers.operate import operate

        provider = await run_in_threadpool(cloud, registry, name)
        status = await run_in_threadpool(operate, provider, registry, name, verb, *args)
    audit(registry, who, f"deployments.{verb}", name, _state(before), _status_view(status))
    return _status_view(status)


@router.post("/deployments/{name}/hibernate", openapi_extra=cli("hibernate"))
async def hibernate(
    name: str, who: Deployer, registry: Reg, settings: Conf, cloud: CloudProvider
) -> LocalStatusView:
    """Scale a deployment to zero (a cloud's VMs stopped, a serverless warm floor 0); the gateway
    wakes it on the next request."""
    return await _change("hibernate", name, who, registry, settings, cloud)


@router.post("/deployments/{name}/wake", openapi_extra=cli("wake"))
async def wake(
    name: str, who: Deployer, registry: Reg, settings: Conf, cloud: CloudProvider
) -> LocalStatusView:
    """Start a hibernated deployment's replicas now (a serverless warm floor of at least 1)."""
    return await _change("wake", name, who, registry, settings, cloud)


class ScaleRequest(BaseModel):
    replicas: int = Field(..., ge=0, le=64)


@router.post("/deployments/{name}/scale", openapi_extra=cli("scale"))
async def scale(
    name: str, body: ScaleRequest, who: Deployer, registry: Reg, settings: Conf, cloud: CloudProvider
) -> LocalStatusView:
    """Set a deployment's replica count (0 hibernates it; a serverless one's warm floor). A cloud
    refusal (over a quota, no capacity) is a 409/503 with the fix, and the deployment stays as it was."""
    return await _change("scale", name, who, registry, settings, cloud, body.replicas)
