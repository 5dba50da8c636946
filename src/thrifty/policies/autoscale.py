"""Replica count from load: scale out when requests pile up, scale in after a cool-down (pure).

The gateway samples each deployment's outstanding requests (in flight at its replicas plus held
for a wake) and asks ``decide_replicas`` how many replicas it should have now. The bound comes from
the benchmark: a replica that serves ``throughput_rps`` with a p95 of ``latency_ms_p95`` alone keeps
a request within the SLO while at most ``1 + throughput_rps x (slo - p95)`` requests are ahead of
it (Little's law: each request ahead adds about 1/throughput of wait). More than that per replica
and the p95 leaves the SLO: scale out to ``ceil(outstanding / target)`` at once. Scale in one
replica at a time, only after ``scale_in_cooldown_s`` during which the remaining replicas would
have stayed below half the target (hysteresis), never below ``min_replicas`` nor above
``max_replicas``.

A deployment opts in with ``spec.serving["autoscale"]`` (the keys of ``AutoscaleSettings``);
``settings_from_plan`` fills the target from a plan's chosen candidate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ConfigError


@dataclass(frozen=True)
class AutoscaleSettings:
    min_replicas: int = 1
    max_replicas: int = 4
    target_outstanding_per_replica: float = 4.0
    scale_in_cooldown_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ConfigError(
                f"autoscale min_replicas={self.min_replicas}, max_replicas={self.max_replicas}",
                hint="0 ≤ min ≤ max and max ≥ 1",
            )
        if self.target_outstanding_per_replica <= 0 or self.scale_in_cooldown_s < 0:
            raise ConfigError(
                f"autoscale target={self.target_outstanding_per_replica}, cool-down={self.scale_in_cooldown_s}",
                hint="the target is > 0 requests per replica; the cool-down ≥ 0 s",
            )

    @classmethod
    def from_spec(cls, serving: Mapping[str, Any] | None) -> AutoscaleSettings | None:
        """The settings in a spec's ``serving["autoscale"]``; None when the deployment did not opt in."""
        raw = (serving or {}).get("autoscale")
        if not raw:
            return None
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(
                f"unknown autoscale settings {sorted(unknown)}",
                hint=f"use any of: {', '.join(sorted(cls.__dataclass_fields__))}",
            )
        return cls(**raw)


def target_outstanding(throughput_rps: float, latency_ms_p95: float, slo_latency_ms_p95: float) -> float:
    """Requests one replica may have outstanding while its p95 stays within the SLO (≥ 1)."""
    headroom_s = max(slo_latency_ms_p95 - latency_ms_p95, 0.0) / 1000.0
    return max(1.0, 1.0 + throughput_rps * headroom_s)


def settings_from_plan(
    chosen: Mapping[str, Any], slo_latency_ms_p95: float, *, min_replicas: int = 1, max_replicas: int = 4
) -> AutoscaleSettings:
    """Autoscale settings for a plan's chosen candidate (its benchmarked throughput and p95)."""
    rps, p95 = chosen.get("bench_throughput_rps"), chosen.get("bench_latency_ms_p95")
    if rps is None or p95 is None:
        raise ConfigError(
            "the plan's chosen candidate has no benchmark throughput/p95",
            hint="benchmark the variant, or set serving.autoscale.target_outstanding_per_replica by hand",
        )
    target = target_outstanding(float(rps), float(p95), slo_latency_ms_p95)
    return AutoscaleSettings(min_replicas, max_replicas, target)


@dataclass
class ScaleState:
    """What the autoscaler remembers of one deployment between samples."""

    #: when the load last was too high to drop a replica (monotonic seconds); scale-in waits for
    #: ``scale_in_cooldown_s`` after it
    last_busy_at: float = 0.0


def decide_replicas(
    current: int, outstanding: float, settings: AutoscaleSettings, state: ScaleState, now: float
) -> int:
    """The replica count for now, given ``outstanding`` requests across ``current`` replicas."""
    target = settings.target_outstanding_per_replica
    needed = math.ceil(outstanding / target) if outstanding > 0 else 0
    bounded = min(max(needed, settings.min_replicas), settings.max_replicas)
    if bounded > current:
        state.last_busy_at = now
        return bounded
    if current <= settings.min_replicas or outstanding > (current - 1) * target * 0.5:
        state.last_busy_at = now
        return max(current, settings.min_replicas)
    if now - state.last_busy_at < settings.scale_in_cooldown_s:
        return current
    state.last_busy_at = now  # the next step down waits a full cool-down again
    return current - 1
