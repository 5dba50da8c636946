"""The dashboard's pages (GET): each builds its context from ``thrifty.read`` and renders a template."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from thrifty import read
from thrifty.web import charts, playground
from thrifty.web.base import (
    HERE,
    STATIC,
    LauncherDep,
    RegistryDep,
    SettingsDep,
    error_panel,
    page,
    render,
)
from thrifty.web.launch import DEPLOY_MODEL

router = APIRouter()
#: what the login page needs before anyone is signed in
public = APIRouter()
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
Offset = Query(0, ge=0, description="first row of the page")


@public.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {"cache-control": "public, max-age=3600"}
    return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers=headers)


@router.get("/", response_class=HTMLResponse)
def deployments(request: Request, registry: RegistryDep, offset: int = Offset) -> HTMLResponse:
    return page(request, "deployments.html", lambda: {"page": read.deployments_page(registry, offset)})


def _charts(buckets: list[read.TrafficBucket]) -> list[Any]:
    times = [b.at for b in buckets]
    bucket_s = (times[1] - times[0]).total_seconds() if len(times) > 1 else 1800.0
    return [
        charts.series_svg("latency, mean per bucket", times, [b.latency_ms_mean for b in buckets], unit="ms"),
        charts.series_svg("latency, max per bucket", times, [b.latency_ms_max for b in buckets], unit="ms"),
        charts.series_svg(
            "throughput", times, [b.requests / bucket_s for b in buckets], unit="req/s", bars=True
        ),
        charts.series_svg(
            "errors (HTTP ≥ 400)", times, [float(b.errors) for b in buckets], unit="", bars=True
        ),
    ]


def _detail(registry: Any, name: str) -> dict[str, Any]:
    from thrifty.monitor.ledger import month_start

    view = read.deployment(registry, name)
    buckets = read.traffic(registry, name)
    return {
        "d": view,
        "replicas": read.replicas(registry, name),
        "stats": read.request_stats(registry, [name])[name],
        "charts": _charts(buckets),
        "planned": read.planned_cost(view),
        "spend": read.costs(registry, name).deployments[0],
        "month_start": month_start(datetime.now(UTC)),
        "events": list(reversed(read.events(registry, name)))[:50],
        "example": playground.example_body(registry, view),
    }


@router.get("/deployments/{name}", response_class=HTMLResponse)
def deployment(request: Request, registry: RegistryDep, name: str) -> HTMLResponse:
    return page(request, "deployment.html", lambda: _detail(registry, name))


@router.get("/models", response_class=HTMLResponse)
def models(
    request: Request,
    registry: RegistryDep,
    uploaded: str = "",
    version: int = 0,
    sha256: str = "",
    created: int = 1,
) -> HTMLResponse:
    """The models, the upload form, and (after an upload) the new version with a link to deploy it."""
    just = {"model": uploaded, "version": version, "sha256": sha256, "created": bool(created)}
    return page(
        request,
        "models.html",
        lambda: {"models": read.models(registry), "uploaded": just if uploaded else None},
    )


@router.get("/models/{name}", response_class=HTMLResponse)
def model(request: Request, registry: RegistryDep, name: str) -> HTMLResponse:
    return page(
        request,
        "model.html",
        lambda: {"model": read.model(registry, name), "variants": read.variants(registry, name)},
    )


@router.get("/plans", response_class=HTMLResponse)
def plans(request: Request, registry: RegistryDep) -> HTMLResponse:
    return page(request, "plans.html", lambda: {"plans": read.plans(registry, limit=read.PAGE_SIZE)})


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
def plan(request: Request, registry: RegistryDep, plan_id: int) -> HTMLResponse:
    def build() -> dict[str, Any]:
        found = read.plan(registry, plan_id)
        return {"plan": found, "explanation": found.explanation()}

    return page(request, "plan.html", build)


@router.get("/costs", response_class=HTMLResponse)
def costs(request: Request, registry: RegistryDep, offset: int = Offset) -> HTMLResponse:
    return page(request, "costs.html", lambda: {"page": read.costs_page(registry, offset)})


@router.get("/recommendations", response_class=HTMLResponse)
def recommendations(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    deployment: str = "",
    days: float = Query(7.0, gt=0, le=90),
) -> HTMLResponse:
    """Cheaper-plan events at once; one deployment's re-plan on its observed traffic when asked
    (seconds: the planner runs again, so never for the whole fleet on one page load)."""

    def build() -> dict[str, Any]:
        advice = read.recommendations(registry, settings, deployment, days=days) if deployment else None
        return {
            "events": read.recent_events(registry, read.RECOMMENDATION_KINDS),
            "deployment": deployment,
            "days": days,
            "advice": advice,
            "deploy_flow": DEPLOY_MODEL,
            "applied": read.applied_recommendations(registry, deployment or None),
            "undoable": _undoable(registry, deployment),
        }

    return page(request, "recommendations.html", build)


def _undoable(registry: Any, deployment: str) -> set[int]:
    """The applies an Undo button is shown for: each deployment's latest, when not undone yet."""
    latest: dict[str, read.AppliedView] = {}
    for row in read.applied_recommendations(registry, deployment or None, limit=200):
        latest.setdefault(row.deployment, row)
    return {row.id for row in latest.values() if not row.undone}


@router.get("/alerts", response_class=HTMLResponse)
def alerts(request: Request, registry: RegistryDep) -> HTMLResponse:
    kinds = [k for k in read.ALERT_KINDS if k != "anomaly"]  # anomalies are listed from their store
    return page(
        request,
        "alerts.html",
        lambda: {
            "alerts": read.alerts(registry, limit=read.PAGE_SIZE),
            "events": read.recent_events(registry, kinds),
            "kinds": kinds,
        },
    )


@router.get("/deploy", response_class=HTMLResponse)
def deploy_form(request: Request, registry: RegistryDep, model: str = "") -> HTMLResponse:
    return page(request, "deploy.html", lambda: {"models": read.models(registry), "model": model})


def _run(launcher: Any, run_id: str, deployment: str) -> dict[str, Any]:
    run = launcher.status(run_id)
    return {"run": run, "deployment": deployment, "final": run.state in FINAL_STATES}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run(request: Request, launcher: LauncherDep, run_id: str, deployment: str = "") -> HTMLResponse:
    return page(request, "run.html", lambda: _run(launcher, run_id, deployment))


@router.get("/runs/{run_id}/state", response_class=HTMLResponse)
def run_state(request: Request, launcher: LauncherDep, run_id: str, deployment: str = "") -> HTMLResponse:
    try:
        return render(request, "_run_state.html", _run(launcher, run_id, deployment))
    except Exception as exc:
        return error_panel(request, exc, partial=True)
