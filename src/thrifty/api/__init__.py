"""The management REST API (FastAPI): ``thrifty api`` serves ``create_app(settings)``."""

from __future__ import annotations

from thrifty.api.app import create_app

__all__ = ["create_app"]
