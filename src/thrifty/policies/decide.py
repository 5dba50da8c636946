"""Decide now, for one deployed model, from its own request history: keep warm, hibernate, pre-warm.

The same policies as the simulator: the request timestamps are binned per minute over the
history window and replayed through the policy's stepper; the windows it holds afterwards say
whether the instance should be loaded in the current minute (or within ``lead_min``, so that a
sweep every few minutes wakes it before the predicted request, cold start included).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from thrifty.errors import ConfigError
from thrifty.policies.base import NEVER, Action, Policy
from thrifty.policies.costaware import CostAwareStepper
from thrifty.policies.trace import bin_timestamps

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class ModelCosts:
    """What keeping one replica warm costs and what a cold start costs."""

    idle_usd_per_hour: float
    cold_start_s: float
    usd_per_cold_start_s: float | None = None  # price of a user's wait; None: hold the memory budget

    def __post_init__(self) -> None:
        if self.idle_usd_per_hour < 0 or self.cold_start_s < 0:
            raise ConfigError(
                f"idle_usd_per_hour={self.idle_usd_per_hour}, cold_start_s={self.cold_start_s}",
                hint="costs are ≥ 0: the plan's $/hour of one warm replica and the measured load time",
            )


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    policy: str
    decided_at: datetime
    last_request_at: datetime | None
    prewarm_min: float
    keepalive_min: float
    warm_until: datetime | None
    next_prewarm_at: datetime | None
    idle_usd_per_window: float

    def row(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def decide(
    request_times: Sequence[datetime],
    now: datetime,
    costs: ModelCosts,
    policy: Policy,
    *,
    history_min: int = 7 * 1440,
    lead_min: float = 5.0,
) -> Decision:
    """The action for the minute that holds ``now`` (timezone-aware UTC)."""
    if now.tzinfo is None:
        raise ConfigError("now is a naive datetime", hint="pass datetime.now(UTC)")
    current = now.replace(second=0, microsecond=0)
    start = current - history_min * MINUTE
    counts = bin_timestamps(request_times, start, history_min + 1)
    stepper = policy.start(1)
    _price_in_dollars(stepper, costs)
    for minute, count in enumerate(counts):
        stepper.observe(minute, np.array([count], dtype=np.int64))
    if isinstance(stepper, CostAwareStepper):
        stepper.settle_price(history_min)
    invoked = np.flatnonzero(counts)
    last = int(invoked[-1]) if invoked.size else NEVER
    prewarm_arr, keepalive_arr = stepper.windows()
    return _decision(
        policy.name,
        current,
        start,
        last,
        float(prewarm_arr[0]),
        float(keepalive_arr[0]),
        costs,
        lead_min + costs.cold_start_s / 60.0,
        history_min,
    )


def _price_in_dollars(stepper: object, costs: ModelCosts) -> None:
    """Cost-aware in dollars: a cold start is worth its wait in idle minutes, at a fixed price of 1."""
    if costs.usd_per_cold_start_s is None or not isinstance(stepper, CostAwareStepper):
        return
    usd_per_idle_min = max(costs.idle_usd_per_hour / 60.0, 1e-12)
    value = costs.cold_start_s * costs.usd_per_cold_start_s / usd_per_idle_min
    stepper.value_override = np.array([value])
    stepper.log_price = 0.0
    stepper.frozen_price = True


def _decision(
    name: str,
    current: datetime,
    start: datetime,
    last: int,
    prewarm: float,
    keepalive: float,
    costs: ModelCosts,
    lead_min: float,
    history_min: int,
) -> Decision:
    usd_window = keepalive / 60.0 * costs.idle_usd_per_hour
    if last == NEVER:
        return Decision(
            Action.HIBERNATE,
            f"no request in the last {history_min / 1440:g} days",
            name,
            current,
            None,
            prewarm,
            keepalive,
            None,
            None,
            usd_window,
        )
    now_index = history_min  # the minute holding `now`
    opens, closes = last + prewarm + 1, last + prewarm + keepalive  # loaded minutes [opens, closes]
    last_at = start + last * MINUTE
    warm_until = start + (closes + 1) * MINUTE if keepalive > 0 and closes >= now_index else None
    prewarm_at = start + opens * MINUTE if prewarm > 0 and opens > now_index and keepalive > 0 else None
    idle = now_index - last
    window = f"window: load {prewarm:g} min after the last request, keep {keepalive:g} min ({name})"
    if idle == 0:
        return Decision(
            Action.KEEP_WARM,
            "serving requests this minute",
            name,
            current,
            last_at,
            prewarm,
            keepalive,
            warm_until,
            prewarm_at,
            usd_window,
        )
    if keepalive > 0 and opens <= now_index <= closes:
        return Decision(
            Action.KEEP_WARM,
            f"idle {idle} min, inside the learned {window}",
            name,
            current,
            last_at,
            prewarm,
            keepalive,
            warm_until,
            prewarm_at,
            usd_window,
        )
    if keepalive > 0 and now_index < opens <= now_index + math.ceil(lead_min):
        reason = f"idle {idle} min; next request predicted in {opens - now_index:g} min; {window}"
        return Decision(
            Action.PRE_WARM,
            reason,
            name,
            current,
            last_at,
            prewarm,
            keepalive,
            warm_until,
            prewarm_at,
            usd_window,
        )
    reason = f"idle {idle} min, outside the learned {window}"
    return Decision(
        Action.HIBERNATE,
        reason,
        name,
        current,
        last_at,
        prewarm,
        keepalive,
        warm_until,
        prewarm_at,
        usd_window,
    )
