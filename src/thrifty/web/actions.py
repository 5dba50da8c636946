"""The dashboard's writes (POST, CSRF-checked, ``deployer`` role): a model upload, one-click deploy,
applying a recommendation and undoing it, and the playground's inference. Each is audited with the
signed-in token's name (``dashboard.*`` actions); a refused one is audited as refused (thrifty.web.auth)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from thrifty import access, read
from thrifty.errors import ConfigError
from thrifty.monitor import applied
from thrifty.monitor.applied import Start
from thrifty.web import playground
from thrifty.web.auth import require_role
from thrifty.web.base import (
    CSRF_COOKIE,
    LauncherDep,
    RegistryDep,
    SettingsDep,
    check_csrf,
    error_panel,
    render,
)
from thrifty.web.launch import DEPLOY_MODEL, Launcher

router = APIRouter()
#: the targets the form offers (the flow's ``target``): ``auto`` follows the plan, ``local`` is this machine
TARGETS = ("auto", "local")


def _deploy_parameters(model: str, name: str, p95_ms: float, rps: float, target: str) -> dict[str, Any]:
    if not model.strip():
        raise ConfigError("no model given", hint="enter a registered model's name or a model file's path")
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}", hint=f"choose one of {', '.join(TARGETS)}")
    parameters: dict[str, Any] = {"model": model.strip(), "p95_ms": p95_ms, "rps": rps, "target": target}
    if name.strip():
        parameters["name"] = name.strip()
    return parameters


@router.post("/models/upload", response_model=None)
async def upload_model(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    """The API's streamed upload (size limit, sha256, bare file names, ``ingest_model``); the CSRF
    token is a field of the multipart body, checked before anything is ingested. Then the models
    page with the new model and a link to the deploy form."""
    from thrifty.api.upload import upload_model as receive_and_ingest

    try:
        who = require_role(request, registry)  # before a byte of the body is read
        if not request.cookies.get(CSRF_COOKIE):  # no cookie: refuse before reading the body
            check_csrf(request, "")
        result, staged = await receive_and_ingest(
            request.headers, request.stream(), registry=registry, settings=settings,
            before_ingest=lambda s: check_csrf(request, s.fields.get("csrf_token", "")),
        )  # fmt: skip
    except Exception as exc:
        return error_panel(request, exc)
    row = read.version_view(result.version)
    after = {"version": row.version, "sha256": staged.sha256, "created": result.created}
    access.audit(registry, who.name, "dashboard.models.upload", row.model, after=after)
    query = f"uploaded={quote(row.model)}&version={row.version}&sha256={staged.sha256}"
    return RedirectResponse(f"/models?{query}&created={int(result.created)}", status_code=303)


@router.post("/deploy", response_model=None)
def deploy(
    request: Request,
    registry: RegistryDep,
    launcher: LauncherDep,
    csrf_token: Annotated[str, Form()],
    model: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
    p95_ms: Annotated[float, Form(gt=0)] = 50.0,
    rps: Annotated[float, Form(gt=0)] = 20.0,
    target: Annotated[str, Form()] = "auto",
) -> Response:
    """Start deploy-model and go to the run's page (303, so a reload does not deploy twice)."""
    try:
        check_csrf(request, csrf_token)
        who = require_role(request, registry)
        parameters = _deploy_parameters(model, name, p95_ms, rps, target)
        run_id = launcher.start(parameters)
    except Exception as exc:
        return error_panel(request, exc)
    deployment = parameters.get("name") or ""
    after = {"run_id": run_id, "parameters": parameters}
    access.audit(registry, who.name, "dashboard.deploy", deployment or parameters["model"], after=after)
    return RedirectResponse(f"/runs/{quote(run_id)}?deployment={quote(deployment)}", status_code=303)


@router.post("/deployments/{name}/playground", response_class=HTMLResponse)
def infer(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    name: str,
    csrf_token: Annotated[str, Form()],
    body: Annotated[str, Form()],
) -> HTMLResponse:
    """Send the body to the deployment's endpoint from the server; the answer as an htmx fragment."""
    try:
        check_csrf(request, csrf_token)
        who = require_role(request, registry)
        status, answer, latency_ms = playground.send(read.deployment(registry, name), body, settings)
    except Exception as exc:
        return error_panel(request, exc, partial=True)
    after = {"status": status, "latency_ms": round(latency_ms, 1)}
    access.audit(registry, who.name, "dashboard.playground", name, after=after)
    context = {"status": status, "answer": json.dumps(answer, indent=1)[:20000], "latency_ms": latency_ms}
    return render(request, "_playground.html", context)


#: the audit log's actions for an apply or undo from the dashboard (``dashboard.recommendations.apply``)
AUDIT_PREFIX = "dashboard."


def _starter(launcher: Launcher) -> Start:
    """Runs through the dashboard's launcher: deploy-model as the one-click deploy starts it."""

    def start(flow: str, parameters: dict[str, Any]) -> str:
        return launcher.start(parameters) if flow == DEPLOY_MODEL else launcher.start_flow(flow, parameters)

    return start


def _after(row: Any, deployment: str, days: float, run_id: str | None, done: str) -> Response:
    """The run's page when a flow started, else the recommendations page saying what changed."""
    if run_id:
        return RedirectResponse(f"/runs/{quote(run_id)}?deployment={quote(deployment)}", status_code=303)
    query = f"deployment={quote(deployment)}&days={days:g}&{done}={row.id}"
    return RedirectResponse(f"/recommendations?{query}#applied", status_code=303)


@router.post("/recommendations/apply", response_model=None)
def apply_recommendation(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    launcher: LauncherDep,
    csrf_token: Annotated[str, Form()],
    deployment: Annotated[str, Form()],
    kind: Annotated[str, Form()],
    days: Annotated[float, Form(gt=0, le=90)] = 7.0,
) -> Response:
    """Re-plan, then apply (as ``thrifty recommend NAME --apply KIND`` does): a redeploy starts its
    deploy-model run (its page next), a hibernation policy is stored at once. Recorded for undo."""
    try:
        check_csrf(request, csrf_token)
        who = require_role(request, registry)
        answer = read.recommendations(registry, settings, deployment, days=days)
        rec = read.find_recommendation(answer, deployment, kind)
        row = applied.apply(registry, rec, who.name, _starter(launcher), audit_as=AUDIT_PREFIX)
    except Exception as exc:
        return error_panel(request, exc)
    return _after(row, deployment, days, row.run_id, "applied")


@router.post("/recommendations/undo", response_model=None)
def undo_recommendation(
    request: Request,
    registry: RegistryDep,
    launcher: LauncherDep,
    csrf_token: Annotated[str, Form()],
    deployment: Annotated[str, Form()],
    applied_id: Annotated[int | None, Form()] = None,
    days: Annotated[float, Form(gt=0, le=90)] = 7.0,
) -> Response:
    """Undo the deployment's latest apply (``thrifty recommend NAME --undo``): the rollback run's
    page, or the recommendations page with the previous policy back."""
    try:
        check_csrf(request, csrf_token)
        who = require_role(request, registry)
        row = applied.undo(
            registry, deployment, who.name, _starter(launcher), applied_id, audit_as=AUDIT_PREFIX
        )
    except Exception as exc:
        return error_panel(request, exc)
    return _after(row, deployment, days, row.undo_run_id, "undone")
