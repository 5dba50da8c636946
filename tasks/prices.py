"""Prefect task around the price refresh (``thrifty.catalog.refresh``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from thrifty import runtime
from thrifty.catalog.refresh import parse_providers, refresh_from_snapshot, refresh_live
from thrifty.errors import CatalogError
from thrifty.settings import get_settings


@task(name="fetch-prices", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def fetch_prices(providers: list[str] | None = None, snapshot: str | None = None) -> dict[str, Any]:
    """Append fresh prices (live APIs, or a snapshot folder) to the registry's history.

    A provider that fails keeps its previous prices in force; when every provider fails the task
    raises, so Prefect retries it.
    """
    registry = runtime.registry()
    if snapshot:
        report = refresh_from_snapshot(registry, Path(snapshot))
    else:
        report = refresh_live(registry, get_settings(), parse_providers(providers))
    fetched = {k: v for k, v in report.written.items() if k != "serverless"}
    if report.failed and not any(fetched.values()):
        raise CatalogError(
            f"every price source failed: {report.failed}", hint="check the network; will retry"
        )
    return {"written": report.written, "failed": report.failed}
