"""Prefect task around ``thrifty.ingest.ingest_model``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from thrifty import runtime
from thrifty.ingest import ingest_model as _ingest_model


@task(name="ingest-model", cache_policy=NO_CACHE)
def ingest_model(path: str, name: str | None = None) -> dict[str, Any]:
    """Validate, store and register the model at ``path``; returns the version as a dict.

    Not cached by Prefect: the bytes behind a path can change, and the registry already makes
    re-ingesting the same bytes a no-op (same sha256 → same version).
    """
    result = _ingest_model(Path(path), name, registry=runtime.registry(), store=runtime.store())
    version = result.version
    return {
        "model": version.model.name,
        "version": version.version,
        "version_id": version.id,
        "sha256": version.sha256,
        "format": version.format,
        "task": version.task,
        "created": result.created,
    }
