"""``create_app(settings)``: the management API under ``/api/v1`` (and the dashboard at ``/`` when
``thrifty.web`` is installed). OpenAPI document: ``/api/v1/openapi.json``."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Request

from thrifty.api import errors
from thrifty.api.routes import admin, deployments, fleet, models, plans
from thrifty.settings import Settings, get_settings

PREFIX = "/api/v1"
#: is this dashboard request from this machine? (thrifty.web.auth.LocalPeer)
LocalPeer = Callable[[Request], bool]
#: every refusal is an ErrorBody; the OpenAPI document says so (and not FastAPI's default 422 shape)
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": errors.ErrorBody, "description": what}
    for code, what in (
        (400, "bad input"), (401, "no or a wrong token"), (403, "role too low"), (404, "unknown id"),
        (409, "busy (an operation on it runs), or over a cloud quota"), (413, "upload too large"), (422, "invalid fields"),
        (500, "unexpected"), (501, "not available in this thrifty yet"),
    )
}  # fmt: skip


def create_app(settings: Settings | None = None, *, local_peer: LocalPeer | None = None) -> FastAPI:
    """The API; the dashboard at ``/`` with its login. ``local_peer`` decides which dashboard
    requests come from this machine (loopback by default; a test passes another to play a remote
    peer) — while no API token exists, only those are served."""
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
    if importlib.util.find_spec("thrifty.web") is not None:  # the dashboard, at /, behind its login
        app.include_router(importlib.import_module("thrifty.web.routes").router)
        importlib.import_module("thrifty.web.auth").install(app, local_peer)
    return app


def openapi_document() -> dict[str, object]:
    """The OpenAPI document the SDKs are generated from (``python -m thrifty.api.app``)."""
    return create_app(Settings()).openapi()
