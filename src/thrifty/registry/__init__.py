"""The model registry: SQLAlchemy 2 tables, Alembic migrations and the repository."""

from __future__ import annotations

from thrifty.registry.models import (
    Artifact,
    BenchmarkResult,
    Deployment,
    DeploymentEvent,
    Model,
    ModelVersion,
    Plan,
    PriceQuote,
    RequestLog,
    Revision,
    Variant,
)
from thrifty.registry.repository import Registry

__all__ = [
    "Artifact",
    "BenchmarkResult",
    "Deployment",
    "DeploymentEvent",
    "Model",
    "ModelVersion",
    "Plan",
    "PriceQuote",
    "Registry",
    "RequestLog",
    "Revision",
    "Variant",
    "open_registry",
]


def open_registry(url: str | None = None) -> Registry:
    """The registry at ``url`` (default: from settings), migrated to the newest schema."""
    from thrifty.settings import get_settings

    return Registry.from_url(url or get_settings().resolved_database_url)
