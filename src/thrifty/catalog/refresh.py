"""Refresh the price history: fetch each provider, validate, append — one provider's failure keeps
its previous rows in force (they stay the newest per key) and is reported, never half-written.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.catalog.store import save_prices
from thrifty.errors import CatalogError, ConfigError
from thrifty.targets import cloud_attribute, clouds

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.registry import Registry
    from thrifty.settings import Settings

log = logging.getLogger(__name__)


def live_providers() -> tuple[str, ...]:
    """Clouds with a live price fetcher (from the target descriptors)."""
    return tuple(c for c in clouds() if cloud_attribute(c, "price_fetcher"))


@dataclass
class RefreshReport:
    """What one refresh wrote (rows per source) and which sources failed (and why)."""

    written: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.written.values())


def parse_providers(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"aws,gcp"`` → ("aws", "gcp"); unknown names fail with the list of valid ones."""
    valid = live_providers()
    if text is None:
        return valid
    names = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    unknown = sorted(set(names) - set(valid))
    if unknown or not names:
        raise ConfigError(
            f"unknown provider(s) {unknown or names!r}",
            hint=f"choose from {', '.join(valid)} (comma-separated)",
        )
    return tuple(dict.fromkeys(names))


def refresh_from_snapshot(registry: Registry, folder: Path) -> RefreshReport:
    """Append every row of a snapshot folder (validated first; a bad folder changes nothing)."""
    from thrifty.catalog.serverless import serverless_table
    from thrifty.catalog.snapshot import read_snapshot

    report = RefreshReport()
    report.written[f"snapshot:{folder}"] = save_prices(registry, read_snapshot(folder))
    report.written["serverless"] = save_prices(registry, serverless_table())
    return report


def refresh_live(
    registry: Registry,
    settings: Settings,
    providers: Iterable[str] | None = None,
    fetchers: dict[str, Callable[[], pd.DataFrame]] | None = None,
) -> RefreshReport:
    """Fetch live prices per provider; each good table is appended, each failure logged and kept out."""
    from thrifty.catalog.serverless import serverless_table

    fetchers = fetchers or default_fetchers(settings)
    report = RefreshReport()
    for provider in live_providers() if providers is None else providers:
        try:
            table = fetchers[provider]()
            report.written[provider] = save_prices(registry, table)
        except CatalogError as exc:
            log.error("price refresh for %s failed; its previous prices stay in force: %s", provider, exc)
            report.failed[provider] = exc.message
    report.written["serverless"] = save_prices(registry, serverless_table())
    return report


def default_fetchers(settings: Settings) -> dict[str, Callable[[], pd.DataFrame]]:
    """Each cloud's live fetcher (its target descriptor's ``price_fetcher``) with settings applied."""
    fetchers: dict[str, Callable[[], pd.DataFrame]] = {}
    for cloud in live_providers():
        fetch = _load(str(cloud_attribute(cloud, "price_fetcher")))
        fetchers[cloud] = partial(fetch, settings)
    return fetchers


def _load(path: str) -> Callable[[Settings], pd.DataFrame]:
    module_name, _, function = path.partition(":")
    fetch: Callable[[Settings], pd.DataFrame] = getattr(importlib.import_module(module_name), function)
    return fetch
