"""The dashboard as one FastAPI ``router``: the management API mounts it at ``/``."""

from __future__ import annotations

from fastapi import APIRouter

from thrifty.web import actions, pages

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(actions.router)

__all__ = ["router"]
