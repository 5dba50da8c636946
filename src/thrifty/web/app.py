"""The dashboard alone: ``create_app()`` mounts the router (the management API mounts it at ``/`` too).

python -m thrifty.web [--port 8480]     serve it on loopback with uvicorn
"""

from __future__ import annotations

from fastapi import FastAPI

from thrifty.web import auth
from thrifty.web.base import get_launcher
from thrifty.web.launch import Launcher
from thrifty.web.routes import router


def create_app(launcher: Launcher | None = None, local_peer: auth.LocalPeer | None = None) -> FastAPI:
    """The dashboard as its own app; ``launcher`` replaces how one-click deploy starts a run,
    ``local_peer`` how a request is known to come from this machine (loopback by default)."""
    app = FastAPI(title="thrifty dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    auth.install(app, local_peer)
    if launcher is not None:
        app.dependency_overrides[get_launcher] = lambda: launcher
    return app
