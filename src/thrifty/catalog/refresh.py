"""Refresh the price history: fetch each provider, validate, append — one provider's failure keeps
its previous rows in force (they stay the newest per key) and is reported, never half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.catalog.store import save_prices
from thrifty.errors import CatalogError, ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.registry import Registry
    from thrifty.settings import Settings

log = logging.getLogger(__name__)

LIVE_PROVIDERS = ("aws", "azure", "gcp")


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
    if text is None:
        return LIVE_PROVIDERS
    names = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    unknown = sorted(set(names) - set(LIVE_PROVIDERS))
    if unknown or not names:
        raise ConfigError(
            f"unknown provider(s) {unknown or names!r}",
            hint=f"choose from {', '.join(LIVE_PROVIDERS)} (comma-separated)",
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
    providers: Iterable[str] = LIVE_PROVIDERS,
    fetchers: dict[str, Callable[[], pd.DataFrame]] | None = None,
) -> RefreshReport:
    """Fetch live prices per provider; each good table is appended, each failure logged and kept out."""
    from thrifty.catalog.serverless import serverless_table

    fetchers = fetchers or default_fetchers(settings)
    report = RefreshReport()
    for provider in providers:
        try:
            table = fetchers[provider]()
            report.written[provider] = save_prices(registry, table)
        except CatalogError as exc:
            log.error("price refresh for %s failed; its previous prices stay in force: %s", provider, exc)
            report.failed[provider] = exc.message
    report.written["serverless"] = save_prices(registry, serverless_table())
    return report


def default_fetchers(settings: Settings) -> dict[str, Callable[[], pd.DataFrame]]:
    """The live fetchers with settings applied (public endpoints unless ``price_api_urls`` overrides)."""
    from thrifty.catalog import fetch_azure, fetch_gcp

    urls, timeout_s = settings.price_api_urls, settings.price_fetch_timeout_s

    def azure() -> pd.DataFrame:
        url = urls.get("azure_prices", fetch_azure.AZURE_PRICES_URL)
        return fetch_azure.fetch_azure(base_url=url, timeout_s=timeout_s)

    def gcp() -> pd.DataFrame:
        key = settings.gcp_api_key.get_secret_value() if settings.gcp_api_key else ""
        return fetch_gcp.fetch_gcp(
            key, base_url=urls.get("gcp_billing", fetch_gcp.GCP_BILLING_URL), timeout_s=timeout_s
        )

    return {"aws": lambda: _fetch_aws_live(urls, timeout_s), "azure": azure, "gcp": gcp}


def _fetch_aws_live(urls: dict[str, str], timeout_s: float) -> pd.DataFrame:
    from thrifty.catalog import fetch_aws

    pricing = fetch_aws.make_client(
        "pricing", fetch_aws.PRICING_REGION, endpoint_url=urls.get("aws_pricing"), timeout_s=timeout_s
    )
    ec2 = fetch_aws.make_client("ec2", "us-east-1", endpoint_url=urls.get("aws_ec2"), timeout_s=timeout_s)
    try:
        advisor = fetch_aws.fetch_spot_advisor(
            urls.get("spot_advisor", fetch_aws.SPOT_ADVISOR_URL), timeout_s=timeout_s
        )
    except CatalogError as exc:  # buckets are optional: spot rows then carry an unknown bucket
        log.warning("Spot Advisor feed unavailable, spot rows get no interruption bucket: %s", exc)
        advisor = None
    return fetch_aws.fetch_aws("us-east-1", pricing_client=pricing, ec2_client=ec2, advisor=advisor)
