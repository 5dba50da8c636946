"""The management REST API (FastAPI): ``thrifty api`` serves ``create_app(settings)``.

``create_app`` is imported on first use, so ``thrifty --help`` (which loads ``thrifty.api.commands``)
imports neither FastAPI nor SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thrifty.api.app import create_app


def __getattr__(name: str) -> object:
    if name == "create_app":
        from thrifty.api.app import create_app

        return create_app
    raise AttributeError(f"module 'thrifty.api' has no attribute {name!r}")


__all__ = ["create_app"]
