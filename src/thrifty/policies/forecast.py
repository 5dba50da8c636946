"""An online ARIMA(1,0,0) forecast of each function's next idle time, vectorized over functions.

The hybrid histogram policy falls back to a time-series forecast when most idle times fall out of
the histogram's range (Shahrad et al. used ARIMA). Here each function's idle-time series
``x_1, x_2, …`` is fitted by ordinary least squares to ``x_k = c + phi * x_{k-1}`` from running
sums (O(1) memory per function, no refits), and the forecast is ``c + phi * x_last``, clipped to
the range of what the function has shown. With fewer than three idle times (or a flat series) the
forecast is the mean of what it has seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thrifty.policies.base import FloatArray, IntArray


@dataclass
class AR1Forecaster:
    n: FloatArray  # pairs (x_{k-1}, x_k) seen
    sum_x: FloatArray
    sum_y: FloatArray
    sum_xx: FloatArray
    sum_xy: FloatArray
    samples: FloatArray
    total: FloatArray
    last: FloatArray
    low: FloatArray
    high: FloatArray

    @classmethod
    def empty(cls, n_functions: int) -> AR1Forecaster:
        def zeros() -> FloatArray:
            return np.zeros(n_functions)

        return cls(
            n=zeros(),
            sum_x=zeros(),
            sum_y=zeros(),
            sum_xx=zeros(),
            sum_xy=zeros(),
            samples=zeros(),
            total=zeros(),
            last=zeros(),
            low=np.full(n_functions, np.inf),
            high=zeros(),
        )

    def update(self, rows: IntArray, idle_min: FloatArray) -> None:
        """Append one idle time to each function in ``rows``."""
        pairs = rows[self.samples[rows] > 0]
        x = self.last[pairs]
        y = idle_min[self.samples[rows] > 0]
        self.n[pairs] += 1
        self.sum_x[pairs] += x
        self.sum_y[pairs] += y
        self.sum_xx[pairs] += x * x
        self.sum_xy[pairs] += x * y
        self.samples[rows] += 1
        self.total[rows] += idle_min
        self.last[rows] = idle_min
        self.low[rows] = np.minimum(self.low[rows], idle_min)
        self.high[rows] = np.maximum(self.high[rows], idle_min)

    def forecast(self, rows: IntArray) -> FloatArray:
        """The next idle time (minutes) of each function in ``rows``; NaN where none was seen."""
        n, sx, sy = self.n[rows], self.sum_x[rows], self.sum_y[rows]
        var = n * self.sum_xx[rows] - sx * sx
        fit = (n >= 2) & (var > 1e-9)
        phi = np.where(fit, (n * self.sum_xy[rows] - sx * sy) / np.where(fit, var, 1.0), 0.0)
        phi = np.clip(phi, -1.0, 1.0)
        intercept = np.where(fit, (sy - phi * sx) / np.maximum(n, 1), 0.0)
        mean = self.total[rows] / np.maximum(self.samples[rows], 1)
        predicted = np.where(fit, intercept + phi * self.last[rows], mean)
        predicted = np.clip(predicted, self.low[rows], self.high[rows])
        return np.where(self.samples[rows] > 0, predicted, np.nan)
