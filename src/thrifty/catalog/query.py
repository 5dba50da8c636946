"""Pure questions asked of a price table (no fetching here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def select_offers(
    table: pd.DataFrame,
    *,
    providers: Iterable[str] | None = None,
    vcpus: float | None = None,
    price_models: Iterable[str] | None = None,
    cpu_only: bool = False,
    accelerator: str | None = None,
) -> pd.DataFrame:
    """Rows matching the filters (``vcpus`` = exactly that many vCPUs; ``accelerator`` in any
    spelling, ``t4`` = ``T4``)."""
    mask = table["provider"].notna()
    if providers:
        mask &= table["provider"].isin(list(providers))
    if vcpus is not None:
        mask &= table["vcpus"] == float(vcpus)
    if price_models:
        mask &= table["price_model"].isin(list(price_models))
    if cpu_only:
        mask &= table["accelerator_count"] == 0
    if accelerator:
        from thrifty.catalog.accelerators import canonical_accelerator

        mask &= table["accelerator_name"] == canonical_accelerator(accelerator)
    return table[mask]


def cheapest(table: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """The cheapest hourly offers, one row per (provider, instance_type, price_model), cheapest first."""
    hourly = table[table["price_model"] != "serverless"].sort_values(["usd_per_hour", "provider", "region"])
    return hourly.drop_duplicates(["provider", "instance_type", "price_model"]).head(limit)
