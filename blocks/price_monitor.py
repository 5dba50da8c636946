"""Block ``PriceMonitorSettings``: the sources the ``price-monitor`` flow refreshes and when a cheaper
offer is worth an event. Configuration only.

    PriceMonitorSettings(providers=["aws", "gcp", "azure"], threshold_fraction=0.15).save("default")
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from thrifty.targets import clouds


class PriceMonitorSettings(Block):
    _block_type_name = "Thrifty Price Monitor"
    _block_type_slug = "thrifty-price-monitor"
    _description = "Price sources to refresh and the saving that makes a cheaper offer worth an event."

    providers: list[str] = Field(
        default=list(clouds()),
        description="Live price sources, refreshed one by one.",
    )
    snapshot: str | None = Field(
        None, description="Refresh from this snapshot folder instead of the live APIs (offline installs)."
    )
    threshold_fraction: float = Field(
        0.10,
        ge=0,
        lt=1,
        description="Emit thrifty.plan.cheaper when another offer is cheaper by more than this.",
    )
    min_saving_usd_per_month: float = Field(1.0, ge=0, description="…and saves at least this many $ a month.")
