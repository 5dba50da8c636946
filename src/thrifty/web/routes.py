"""The dashboard as one FastAPI ``router``: the management API mounts it at ``/``.

Every page and write passes the gate (``thrifty.web.auth.signed_in``); the login page, logout and
the static files do not. An app that mounts the router calls ``thrifty.web.auth.install(app)``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from thrifty.web import actions, auth, pages

router = APIRouter(include_in_schema=False)
router.include_router(pages.public)
router.include_router(auth.router)
router.include_router(pages.router, dependencies=[Depends(auth.signed_in)])
router.include_router(actions.router, dependencies=[Depends(auth.signed_in)])

__all__ = ["router"]
