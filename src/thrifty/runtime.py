"""Process-wide handles built from settings: the registry and the artifact store.

Library functions take these as arguments; the CLI, the tasks and the servers get them here.
"""

from __future__ import annotations

from thrifty.artifacts import ArtifactStore, open_store
from thrifty.registry import Registry, open_registry
from thrifty.settings import Settings, get_settings

_registries: dict[str, Registry] = {}


def registry(settings: Settings | None = None) -> Registry:
    """The registry named by the settings (one engine per URL per process)."""
    settings = settings or get_settings()
    url = settings.resolved_database_url
    if url not in _registries:
        _registries[url] = open_registry(url)
    return _registries[url]


def store(settings: Settings | None = None) -> ArtifactStore:
    settings = settings or get_settings()
    return open_store(
        settings.resolved_artifact_store_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        cache_dir=settings.home / "cache",
    )


def reset() -> None:
    """Forget cached handles (tests call this after changing THRIFTY_* variables)."""
    for reg in _registries.values():
        reg.engine.dispose()
    _registries.clear()
    get_settings.cache_clear()
