"""The hybrid histogram policy of Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020).

Per function, a range-limited histogram of idle times (IT: minutes between two invoked minutes)
with one-minute bins over ``range_min`` (4 h in the paper). After each invoked minute:

* **representative histogram** (coefficient of variation of the bin counts ≥ ``cv_threshold``):
  unload, pre-warm after the ``head_percentile`` (5th) IT minus a ``margin`` (10 %), keep loaded
  until the ``tail_percentile`` (99th) IT plus the margin;
* **out of bounds** (a share ≥ ``oob_threshold`` of ITs beyond the range): a time-series forecast
  of the next IT (online ARIMA(1,0,0), ``forecast.py``); pre-warm at the forecast minus
  ``forecast_margin`` (15 %) and keep loaded for twice that margin;
* otherwise (too few or too flat a pattern, including a function's first invocation): the
  standard keep-alive, no pre-warm and keep loaded for the whole histogram range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from thrifty.errors import ConfigError
from thrifty.policies.base import FloatArray, IntArray, LastSeen
from thrifty.policies.forecast import AR1Forecaster


@dataclass
class IdleHistogram:
    """Idle-time histograms of ``n`` functions: ``counts[i, j]`` ITs of ``j`` minutes, plus overflow."""

    counts: FloatArray
    out_of_bounds: FloatArray

    @classmethod
    def empty(cls, n_functions: int, range_min: int) -> IdleHistogram:
        return cls(np.zeros((n_functions, range_min)), np.zeros(n_functions))

    @property
    def range_min(self) -> int:
        return int(self.counts.shape[1])

    def add(self, rows: IntArray, idle_min: IntArray) -> None:
        inside = idle_min < self.range_min
        np.add.at(self.counts, (rows[inside], idle_min[inside]), 1.0)
        np.add.at(self.out_of_bounds, rows[~inside], 1.0)

    def percentile_bins(self, rows: IntArray, percent: float) -> IntArray:
        """The first bin whose cumulative count reaches ``percent`` % of the in-range ITs."""
        cumulative = np.cumsum(self.counts[rows], axis=1)
        need = cumulative[:, -1:] * (percent / 100.0)
        bins: IntArray = np.argmax(cumulative >= need - 1e-9, axis=1).astype(np.int64)
        return bins

    def cv(self, rows: IntArray) -> FloatArray:
        """Coefficient of variation of the bin counts (0 for an empty histogram)."""
        counts = self.counts[rows]
        mean = counts.mean(axis=1)
        std = counts.std(axis=1, ddof=1)
        cv: FloatArray = np.where(mean > 0, std / np.where(mean > 0, mean, 1.0), 0.0)
        return cv

    def oob_share(self, rows: IntArray) -> FloatArray:
        inside = self.counts[rows].sum(axis=1)
        outside = self.out_of_bounds[rows]
        total = inside + outside
        share: FloatArray = np.where(total > 0, outside / np.where(total > 0, total, 1.0), 0.0)
        return share


@dataclass(frozen=True)
class HybridHistogram:
    """The ATC'20 policy with the paper's settings as defaults."""

    range_min: int = 240
    head_percentile: float = 5.0
    tail_percentile: float = 99.0
    margin: float = 0.10
    cv_threshold: float = 2.0
    oob_threshold: float = 0.5
    forecast_margin: float = 0.15
    name: str = "hybrid-histogram"

    def __post_init__(self) -> None:
        if not 0 <= self.head_percentile <= self.tail_percentile <= 100:
            raise ConfigError(
                f"percentiles head={self.head_percentile} tail={self.tail_percentile} are out of order",
                hint="use 0 ≤ head ≤ tail ≤ 100 (the paper: 5 and 99)",
            )
        if self.range_min < 2 or not 0 <= self.margin < 1 or not 0 <= self.forecast_margin < 1:
            raise ConfigError(
                f"range_min={self.range_min}, margin={self.margin}, forecast_margin={self.forecast_margin}",
                hint="range_min ≥ 2 minutes and margins in [0, 1) (the paper: 240, 0.10, 0.15)",
            )

    def settings(self) -> Mapping[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "name"}

    def start(self, n_functions: int) -> HybridStepper:
        return HybridStepper(self, n_functions)


class HybridStepper:
    def __init__(self, policy: HybridHistogram, n_functions: int) -> None:
        self.policy = policy
        self.seen = LastSeen.empty(n_functions)
        self.histogram = IdleHistogram.empty(n_functions, policy.range_min)
        self.forecaster = AR1Forecaster.empty(n_functions)
        self.prewarm_min = np.zeros(n_functions)
        self.keepalive_min = np.full(n_functions, float(policy.range_min))

    def windows(self) -> tuple[FloatArray, FloatArray]:
        return self.prewarm_min, self.keepalive_min

    def observe(self, minute: int, counts: IntArray) -> None:
        invoked = counts > 0
        rows, idle_min = self.seen.idle_minutes(minute, invoked)
        self.histogram.add(rows, idle_min)
        self.forecaster.update(rows, idle_min.astype(np.float64))
        self.seen.update(minute, invoked)
        self._decide(np.flatnonzero(invoked))

    def _decide(self, rows: IntArray) -> None:
        p = self.policy
        prewarm = np.zeros(len(rows))
        keepalive = np.full(len(rows), float(p.range_min))
        certain = self.histogram.cv(rows) >= p.cv_threshold
        head = self.histogram.percentile_bins(rows, p.head_percentile)
        tail = self.histogram.percentile_bins(rows, p.tail_percentile)
        hist_prewarm = np.floor(head * (1 - p.margin))
        hist_keepalive = np.ceil((tail + 1) * (1 + p.margin)) - hist_prewarm
        prewarm = np.where(certain, hist_prewarm, prewarm)
        keepalive = np.where(certain, hist_keepalive, keepalive)
        oob = self.histogram.oob_share(rows) >= p.oob_threshold
        if oob.any():
            predicted = self.forecaster.forecast(rows[oob])
            prewarm[oob] = np.floor(predicted * (1 - p.forecast_margin))
            keepalive[oob] = np.maximum(np.ceil(predicted * 2 * p.forecast_margin), 1.0)
        self.prewarm_min[rows] = prewarm
        self.keepalive_min[rows] = keepalive
