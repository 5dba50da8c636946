"""``create_app(settings)``: the management API under ``/api/v1`` (and the dashboard at ``/`` when
``thrifty.web`` is installed). OpenAPI document: ``/api/v1/openapi.json``."""

from __future__ import annotations

import importlib
import importlib.util

from fastapi import APIRouter, Depends, FastAPI, Request

from thrifty.api import errors
from thrifty.api.routes import admin, deployments, fleet, models, plans
from thrifty.errors import AccessError
from thrifty.serving.auth import is_loopback
from thrifty.settings import Settings, get_settings

PREFIX = "/api/v1"
#: every refusal is an ErrorBody; the OpenAPI document says so (and not FastAPI's default 422 shape)
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": errors.ErrorBody, "description": what}
    for code, what in (
        (400, "bad input"), (401, "no or a wrong token"), (403, "role too low"), (404, "unknown id"),
        (409, "busy: an operation on it runs"), (413, "upload too large"), (422, "invalid fields"),
        (500, "unexpected"), (501, "not available in this thrifty yet"),
    )
}  # fmt: skip


def create_app(settings: Settings | None = None) -> FastAPI:
    from thrifty import __version__

    app = FastAPI(
        title="thrifty",
        version=__version__,
        description="Manage thrifty: models, variants, plans, deployments, costs; tokens, audit, webhooks.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings = settings or get_settings()
    errors.install(app)
    api = APIRouter(prefix=PREFIX, responses=ERROR_RESPONSES)
    for area in (models, plans, deployments, fleet, admin):
        api.include_router(area.router)
    app.include_router(api)
    if importlib.util.find_spec("thrifty.web") is not None:  # the dashboard, at /
        dashboard = importlib.import_module("thrifty.web.routes").router
        app.include_router(dashboard, dependencies=[Depends(dashboard_peer)])
    return app


def dashboard_peer(request: Request) -> None:
    """The dashboard has no login of its own: it answers this machine only, even when the API is
    bound to other addresses (API calls from elsewhere use tokens)."""
    peer = request.client.host if request.client else ""
    if not is_loopback(peer):
        raise AccessError(
            f"the dashboard answers this machine only (client {peer or 'unknown'})",
            hint="open it through an SSH tunnel: ssh -L 8080:127.0.0.1:8080 SERVER, then http://127.0.0.1:8080/",
            status=403,
        )


def openapi_document() -> dict[str, object]:
    """The OpenAPI document the SDKs are generated from (``python -m thrifty.api.app``)."""
    return create_app(Settings()).openapi()
