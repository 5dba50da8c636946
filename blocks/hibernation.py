"""Block ``HibernationPolicy``: which policy the ``hibernation-sweep`` flow applies, its limits and
per-deployment overrides. Configuration only; the decisions live in ``thrifty.policies.sweep``.

    HibernationPolicy(policy="thrifty-cost-aware", overrides={"minilm": {"mode": "always-warm"}}).save("default")
"""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import BaseModel, Field

from thrifty.policies.sweep import SweepConfig


class HibernationOverride(BaseModel):
    """Settings for one deployment; anything left empty follows the block."""

    policy: str | None = Field(None, description="Policy name (see `thrifty policies`), e.g. fixed-60.")
    settings: dict[str, Any] | None = Field(None, description="Policy settings, e.g. {'keepalive_min': 30}.")
    mode: Literal["auto", "always-warm", "off"] | None = Field(
        None, description="auto: the policy decides; always-warm: never hibernate; off: leave it alone."
    )
    min_warm_min: float | None = Field(None, ge=0, description="Never hibernate sooner after a change.")
    idle_usd_per_hour: float | None = Field(None, ge=0, description="$/hour of one warm replica.")
    cold_start_s: float | None = Field(None, ge=0, description="Measured cold-start (load) seconds.")
    usd_per_cold_start_s: float | None = Field(None, ge=0, description="What a second of cold start costs.")


class HibernationPolicy(Block):
    _block_type_name = "Thrifty Hibernation Policy"
    _block_type_slug = "thrifty-hibernation-policy"
    _description = "Which policy hibernates and pre-warms thrifty deployments, its limits and overrides."

    policy: str = Field("thrifty-cost-aware", description="Policy name; `thrifty policies` lists them.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Settings of that policy.")
    history_days: float = Field(7.0, gt=0, le=60, description="Request history each decision learns from.")
    lead_min: float = Field(5.0, ge=0, description="Pre-warm this far ahead (the sweep interval).")
    min_warm_min: float = Field(10.0, ge=0, description="Never hibernate sooner after a deploy or wake.")
    idle_usd_per_hour: float = Field(
        0.10, ge=0, description="$/hour of a warm replica when its plan has none."
    )
    cold_start_s: float = Field(10.0, ge=0, description="Cold-start seconds when none was measured.")
    usd_per_cold_start_s: float | None = Field(
        None,
        ge=0,
        description="Price a second of cold start in $ (else: hold the fixed 10-min memory budget).",
    )
    overrides: dict[str, HibernationOverride] = Field(
        default_factory=dict, description="Per-deployment settings, by deployment name."
    )

    def config_for(self, deployment: str) -> SweepConfig:
        """The plain settings for ``deployment`` (what the library sees; the block stays here)."""
        base = SweepConfig(
            policy=self.policy,
            settings=dict(self.settings),
            history_min=int(self.history_days * 1440),
            lead_min=self.lead_min,
            min_warm_min=self.min_warm_min,
            idle_usd_per_hour=self.idle_usd_per_hour,
            cold_start_s=self.cold_start_s,
            usd_per_cold_start_s=self.usd_per_cold_start_s,
        )
        override = self.overrides.get(deployment)
        return base.with_overrides(override.model_dump() if override else None)
