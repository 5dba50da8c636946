"""thrifty's own policy: the cheapest keep-warm window per function, priced by a budget-held shadow price.

For each function, from the histogram of its own idle times (IT, minutes between invoked
minutes; ITs beyond the range count as "never"), blended with one pseudo-sample of a
heavy-tailed prior so a new function is not overconfident:

* a window that loads the instance ``a`` minutes after the last invoked minute and keeps it until
  ``b`` covers the ITs in ``[a, b)`` — probability ``F(b-1) - F(a-1)`` — and wastes
  ``S(b) - S(a)`` loaded idle minutes on average, with ``S(x) = E[min(IT, x)]``;
* it picks the window maximizing ``value · cover − price · waste``. The objective separates as
  ``G(b) − G(a)`` with ``G(x) = value·F(x−1) − price·S(x)``, so the exact best window is one
  running-minimum pass over the bins (vectorized over functions), not a search over pairs.

``value`` is what one avoided cold start is worth to that function: ``1 / expected invoked minutes
per day``, so each function's cold-start *share* counts equally (the metric of Shahrad et al.).
The decision API can price it in dollars instead (the wait's $ over the idle $ per minute, at a
fixed price of 1) when the user says what a second of cold start costs.

A pre-warm window (``a > 0``) bets that an idle time repeats, so it is only offered to functions
whose idle times have repeated (``prewarm_repeat_share`` of them within ±10 % of another); the
others may only keep warm from the last request on. Memoryless traffic scatters its idle times,
and an empirical histogram of scattered samples would otherwise "see" spikes to pre-warm for.

``price`` is not a setting tuned to a trace: it is a shadow price held by feedback on the memory
budget. The policy keeps, from the same observations, the memory that a fixed
``budget_keepalive_min`` keep-alive would have wasted (the budget) and what its own windows
wasted. Every ``refresh_min`` it re-decides every function and steps log(price) toward where the
predicted waste meets the target; both are predicted from the same fitted distributions, so
estimation bias cancels. The step grows while the error keeps its sign and halves when it flips,
since predicted waste can jump steeply with the price. The target is ``budget_ratio`` × budget
times a correction that an integral term moves by the realized overshoot each minute
(``correction_gain_per_min``). Waste therefore tracks the budget on any trace without a per-trace
setting.

Where it cannot win: on memoryless (Poisson) traffic every function has the same benefit/cost
ratio at every window length, so how a budget is split does not change the expected mean
cold-start share; a fixed keep-alive is already optimal there and learning only adds noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from thrifty.errors import ConfigError
from thrifty.policies.base import NEVER, BoolArray, FloatArray, IntArray, LastSeen, loaded_mask
from thrifty.policies.histogram import IdleHistogram

DAY_MIN = 1440


@dataclass(frozen=True)
class CostAware:
    """Best keep-warm window per function at a shadow price that holds the fixed-10 memory budget."""

    range_min: int = 240
    budget_keepalive_min: float = 10.0
    budget_ratio: float = 0.95
    price_tolerance: float = 0.05
    correction_gain_per_min: float = 0.05
    initial_price: float = 1.0 / DAY_MIN  # break-even of memoryless traffic: value 1/N, hazard N/day
    prior_weight: float = 1.0
    prior_never_share: float = 0.5
    refresh_min: int = 10
    prewarm_repeat_share: float = 0.5
    name: str = "thrifty-cost-aware"

    def __post_init__(self) -> None:
        if self.range_min < 2 or self.budget_ratio <= 0 or self.initial_price <= 0 or self.refresh_min < 1:
            raise ConfigError(
                f"range_min={self.range_min}, budget_ratio={self.budget_ratio}, "
                f"initial_price={self.initial_price}, refresh_min={self.refresh_min}",
                hint="range_min ≥ 2, budget_ratio > 0, initial_price > 0, refresh_min ≥ 1",
            )

    def settings(self) -> Mapping[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "name"}

    def start(self, n_functions: int) -> CostAwareStepper:
        return CostAwareStepper(self, n_functions)


def prior_distribution(range_min: int, never_share: float) -> FloatArray:
    """One pseudo-sample: ``1 - never_share`` spread ∝ 1/(IT+1) over the range, the rest "never"."""
    shape = 1.0 / np.arange(1, range_min + 1, dtype=np.float64)
    return np.append(shape / shape.sum() * (1.0 - never_share), never_share)


@dataclass(frozen=True)
class IdleModel:
    """Per row: ``below[x] = P(IT < x)`` and ``expected_min[x] = E[min(IT, x)]`` for x = 0 … range."""

    below: FloatArray
    expected_min: FloatArray

    @classmethod
    def fit(cls, counts: FloatArray, never: FloatArray, prior: FloatArray, prior_weight: float) -> IdleModel:
        bins = counts.shape[1]
        mass = np.concatenate([counts, never[:, None]], axis=1) + prior_weight * prior[None, :]
        p = mass[:, :bins] / mass.sum(axis=1, keepdims=True)
        zero = np.zeros((len(p), 1))
        below = np.concatenate([zero, np.cumsum(p, axis=1)], axis=1)
        x = np.arange(bins + 1, dtype=np.float64)
        partial = np.concatenate([zero, np.cumsum(p * x[:bins], axis=1)], axis=1)
        return cls(below, partial + x * (1.0 - below))


@dataclass(frozen=True)
class Choice:
    prewarm_min: FloatArray
    keepalive_min: FloatArray
    waste_min: FloatArray  # expected loaded idle minutes per idle period


def repeated(counts: FloatArray, relative_width: float = 0.1) -> FloatArray:
    """Share of each row's idle times that have another within ±``relative_width`` (≥ 1 minute).

    Timers and daily jobs repeat their idle times; memoryless traffic scatters them. A pre-warm
    window bets on a repeat, so it is only offered where repeats have been seen.
    """
    bins = counts.shape[1]
    j = np.arange(bins)
    half = np.maximum(1, np.round(relative_width * j)).astype(np.int64)
    lo, hi = np.maximum(j - half, 0), np.minimum(j + half + 1, bins)
    cumulative = np.concatenate([np.zeros((len(counts), 1)), np.cumsum(counts, axis=1)], axis=1)
    near = cumulative[:, hi] - cumulative[:, lo]
    total = counts.sum(axis=1)
    share: FloatArray = (counts * (near >= 2)).sum(axis=1) / np.maximum(total, 1)
    return share


def best_windows(
    model: IdleModel, value: FloatArray, price: float, prewarm_ok: BoolArray | None = None
) -> Choice:
    """The window maximizing value·cover − price·waste per row: max over b of G(b) − min_{a≤b} G(a).

    Rows where ``prewarm_ok`` is False may only keep warm from the last request on (a = 0).
    """
    gain = value[:, None] * model.below - price * model.expected_min
    running_min = np.minimum.accumulate(gain, axis=1)
    if prewarm_ok is not None:
        running_min = np.where(prewarm_ok[:, None], running_min, gain[:, :1])
    rows = np.arange(len(gain))
    b = np.argmax(gain - running_min, axis=1)
    worth = (gain[rows, b] - running_min[rows, b]) > 0
    a = np.argmax(gain == running_min[rows, b][:, None], axis=1)
    a = np.where(worth, a, 0)
    b = np.where(worth, b, 0)
    waste = model.expected_min[rows, b] - model.expected_min[rows, a]
    return Choice(a.astype(np.float64), (b - a).astype(np.float64), waste)


class CostAwareStepper:
    def __init__(self, policy: CostAware, n_functions: int) -> None:
        self.policy = policy
        self.seen = LastSeen.empty(n_functions)
        self.first = np.full(n_functions, NEVER, dtype=np.int64)
        self.histogram = IdleHistogram.empty(n_functions, policy.range_min)
        self.prior = prior_distribution(policy.range_min, policy.prior_never_share)
        self.log_price = float(np.log(policy.initial_price))
        self.log_correction = 0.0
        self.value_override: FloatArray | None = None
        self.step_log = 0.5
        self.last_sign = 0.0
        self.frozen_price = False  # the decision API prices in dollars instead of holding a budget
        self.budget_min = 0.0
        self.wasted_min = 0.0
        self.prewarm_min = np.zeros(n_functions)
        self.keepalive_min = np.zeros(n_functions)

    @property
    def price(self) -> float:
        return float(np.exp(self.log_price))

    def windows(self) -> tuple[FloatArray, FloatArray]:
        return self.prewarm_min, self.keepalive_min

    def observe(self, minute: int, counts: IntArray) -> None:
        invoked = counts > 0
        self._account(minute, invoked)
        rows, idle_min = self.seen.idle_minutes(minute, invoked)
        self.histogram.add(rows, idle_min)
        self.first[invoked & (self.first == NEVER)] = minute
        self.seen.update(minute, invoked)
        if minute % self.policy.refresh_min == 0:
            self._refresh(minute)
            return
        fresh = invoked.copy()  # a repeat at IT 0 barely moves a window; the refresh catches it up
        fresh[rows[idle_min == 0]] = False
        self._decide(minute, np.flatnonzero(fresh))

    def _account(self, minute: int, invoked: BoolArray) -> None:
        """Add this minute's own and shadow (fixed keep-alive) waste; correct the target by the gap."""
        last = self.seen.last
        mine = loaded_mask(minute, last, self.prewarm_min, self.keepalive_min) & ~invoked
        gap = minute - last
        shadow = (last != NEVER) & (gap >= 1) & (gap <= self.policy.budget_keepalive_min) & ~invoked
        self.wasted_min += float(mine.sum())
        self.budget_min += float(shadow.sum())
        scale = max(self.budget_min, float(len(last)))
        error = (self.wasted_min - self.policy.budget_ratio * self.budget_min) / scale
        self.log_correction -= self.policy.correction_gain_per_min * float(np.clip(error, -1.0, 1.0))
        self.log_correction = float(np.clip(self.log_correction, np.log(0.25), np.log(1.5)))

    def _refresh(self, minute: int) -> None:
        """Re-decide every known function, then move the price so predicted waste meets the budget."""
        rows = np.flatnonzero(self.seen.last != NEVER)
        if not len(rows):
            return
        model, choice = self._choose(minute, rows)
        periods_per_min = self.seen.invoked_minutes[rows] / np.maximum(minute - self.first[rows] + 1, 60)
        predicted = float((periods_per_min * choice.waste_min).sum())
        budget_at = int(min(self.policy.budget_keepalive_min, self.policy.range_min))
        budget = float((periods_per_min * model.expected_min[:, budget_at]).sum())
        target = self.policy.budget_ratio * np.exp(self.log_correction) * budget
        if budget > 0 and not self.frozen_price:
            self._step_price(np.log(max(predicted, 1e-9) / target))

    def _step_price(self, log_error: float) -> None:
        """Sign-adaptive step on log(price): grow while the error keeps its sign, halve when it flips.

        Predicted waste can jump steeply with the price (when many functions sit at the same
        benefit/cost ratio), so a proportional step overshoots; this one settles in a narrow band.
        """
        if abs(log_error) < self.policy.price_tolerance:
            return
        sign = 1.0 if log_error > 0 else -1.0
        grow = sign == self.last_sign
        self.step_log = float(np.clip(self.step_log * (1.3 if grow else 0.5), 0.02, 1.0))
        self.last_sign = sign
        self.log_price += sign * self.step_log

    def settle_price(self, minute: int) -> None:
        """Set the lowest price whose predicted waste meets the budget, by bisection (one-model use).

        The decision API replays one model's history; with a single function the feedback price
        would swing between "pre-warm only" and "keep warm for hours", so it solves the budget
        equation on that model's fitted distribution instead.
        """
        rows = np.flatnonzero(self.seen.last != NEVER)
        if not len(rows) or self.frozen_price:
            return
        budget_at = int(min(self.policy.budget_keepalive_min, self.policy.range_min))
        low, high = np.log(1e-9), np.log(1e3)
        for _ in range(40):
            self.log_price = float((low + high) / 2)
            model, choice = self._choose(minute, rows)
            target = self.policy.budget_ratio * float(model.expected_min[:, budget_at].sum())
            if float(choice.waste_min.sum()) <= target:
                high = self.log_price
            else:
                low = self.log_price
        self.log_price = float(high)
        self._choose(minute, rows)

    def _decide(self, minute: int, rows: IntArray) -> None:
        rows = rows[self.seen.last[rows] != NEVER]
        if len(rows):
            self._choose(minute, rows)

    def _choose(self, minute: int, rows: IntArray) -> tuple[IdleModel, Choice]:
        model = IdleModel.fit(
            self.histogram.counts[rows],
            self.histogram.out_of_bounds[rows],
            self.prior,
            self.policy.prior_weight,
        )
        prewarm_ok = repeated(self.histogram.counts[rows]) >= self.policy.prewarm_repeat_share
        choice = best_windows(model, self._value(minute, rows), self.price, prewarm_ok)
        self.prewarm_min[rows] = choice.prewarm_min
        self.keepalive_min[rows] = choice.keepalive_min
        return model, choice

    def _value(self, minute: int, rows: IntArray) -> FloatArray:
        if self.value_override is not None:
            return self.value_override[rows]
        elapsed = np.maximum(minute - self.first[rows] + 1, DAY_MIN)
        per_day = self.seen.invoked_minutes[rows] * DAY_MIN / elapsed
        value: FloatArray = 1.0 / np.maximum(per_day, 1.0)
        return value
