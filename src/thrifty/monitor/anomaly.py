"""Anomalies a person can read, in a deployment's per-minute cost, latency, errors and traffic.

Four series are derived from one-minute rollups, each over a short window (``window_min``):

    cost      $ per 1M requests  = Σ spend / Σ requests × 1e6
    latency   p95 latency, ms    = median of the per-minute p95s
    errors    error rate         = Σ errors / Σ requests
    traffic   requests / minute  = Σ requests / window

Two detectors look at each, with robust statistics only (medians and MADs: one burst in the
baseline does not move them):

* **jump** — the value is far above the rolling median of the past ``baseline_min`` minutes (robust
  z ≥ ``z``), *and*, once 24 h of history exist, far above the same hour yesterday (so a daily
  ramp-up is not news), held for ``confirm_min`` minutes. Catches spikes and level shifts.
* **drift** — an EWMA (half-life ``drift_halflife_min``) of the value has risen ≥ ``drift_rel``
  above the same hour yesterday, held for ``drift_confirm_min``. Catches slow drifts that a rolling
  baseline follows up. Needs 24 h of history.

A rise must also clear an absolute floor (the cost floor is in $/day: a $/1M rise × the requests a
day at the current rate; latency +20 ms; …) and a relative one, so moves too small to act on are
ignored. After an alert a series stays quiet for ``cooldown_min``. Only rises alert: a drop in
cost, latency or errors is good news, and a drop in traffic is the hibernation policy's business.

Every alert is causal: it depends only on minutes up to its own (tests perturb the future).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from thrifty.errors import ConfigError
from thrifty.policies.base import FloatArray, IntArray

BoolArray = NDArray[np.bool_]

Series = Literal["cost", "latency", "errors", "traffic"]
SERIES: tuple[Series, ...] = ("cost", "latency", "errors", "traffic")
DAY_MIN = 1440
MAD_TO_SIGMA = 1.4826
UPPER_QUANTILE = 0.9  # a value no higher than this share of its reference window is not news
BURSTY_PEAK_RATIO = 5.0  # a day whose peak is over 5× its median is bursty by nature
ERROR_RATE_PRIOR = 0.001  # the error rate assumed when the baseline saw none, for counting noise


@dataclass(frozen=True)
class SeriesRule:
    """How one series is judged: its window, thresholds, floors and the action to suggest."""

    unit: str
    window_min: int
    min_rel: float  # a rise below this fraction of the baseline is ignored
    floor: float  # a rise below this (in floor_unit) is ignored
    floor_unit: str
    action: str
    min_requests: int = 0  # fewer requests in the window: no value (too few to judge)
    min_events: float = 0.0  # for rates: a rise must also mean this many more events in the window
    scale_rel: float = 0.05  # the robust scale is at least this fraction of the baseline

    def __post_init__(self) -> None:
        if self.window_min < 1 or self.min_rel < 0 or self.floor < 0 or self.scale_rel <= 0:
            raise ConfigError(
                f"series rule {self}", hint="window ≥ 1 minute, min_rel and floor ≥ 0, scale_rel > 0"
            )


DEFAULT_RULES: Mapping[Series, SeriesRule] = {
    "cost": SeriesRule(
        "$/1M requests",
        15,
        0.2,
        0.10,
        "$/day",
        "check replicas and the price in force (`thrifty status`); scale in or re-plan (`thrifty plan`)",
        min_requests=20,
    ),
    "latency": SeriesRule(
        "ms",
        5,
        0.2,
        20.0,
        "ms",
        "compare replicas with traffic; if it began with a new revision, roll back",
        min_requests=20,
    ),
    "errors": SeriesRule(
        "share of requests",
        10,
        0.5,
        0.01,
        "share of requests",
        "read the gateway log for the failing status; if it began with a new revision, roll back",
        min_requests=50,
        min_events=4.0,
        scale_rel=0.2,
    ),
    "traffic": SeriesRule(
        "requests/min",
        5,
        0.25,
        5.0,
        "requests/min",
        "confirm the traffic is wanted (a client retrying in a loop?) and that autoscaling keeps up",
    ),
}


@dataclass(frozen=True)
class DetectorConfig:
    """The detectors' settings; ``rules`` per series (defaults: ``DEFAULT_RULES``)."""

    baseline_min: int = 120
    z: float = 6.0
    z_yesterday: float = 4.0
    confirm_min: int = 3
    yesterday_halfwidth_min: int = 30
    drift_halflife_min: float = 60.0
    drift_rel: float = 0.25
    drift_confirm_min: int = 30
    cooldown_min: int = 60
    drift_series: tuple[Series, ...] = ("cost", "latency")  # traffic growth is a forecast, not an alarm
    beyond_day_max: tuple[Series, ...] = ("traffic",)  # bursty traffic within the last day's peak is not odd
    rules: Mapping[Series, SeriesRule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def __post_init__(self) -> None:
        if self.baseline_min < 10 or self.confirm_min < 1 or self.cooldown_min < 0 or self.z <= 0:
            raise ConfigError(
                f"detector settings baseline_min={self.baseline_min}, confirm_min={self.confirm_min}, "
                f"cooldown_min={self.cooldown_min}, z={self.z}",
                hint="baseline ≥ 10 minutes, confirm ≥ 1 minute, cooldown ≥ 0, z > 0",
            )


@dataclass(frozen=True)
class MinuteMetrics:
    """One deployment's one-minute rollups: minute ``i`` starts at ``start + i`` minutes (no gaps)."""

    deployment: str
    start: datetime
    requests: FloatArray
    errors: FloatArray
    latency_ms_p95: FloatArray  # NaN in a minute without requests
    usd: FloatArray  # spend in that minute

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ConfigError(f"metrics of {self.deployment!r} start at a naive datetime", hint="use UTC")
        lengths = {len(a) for a in (self.requests, self.errors, self.latency_ms_p95, self.usd)}
        if len(lengths) != 1:
            raise ConfigError(
                f"metrics of {self.deployment!r} have series of lengths {sorted(lengths)}",
                hint="one value per minute in every series (0 requests and NaN latency when idle)",
            )
        if (np.asarray(self.requests) < 0).any() or (np.asarray(self.usd) < 0).any():
            raise ConfigError(
                f"metrics of {self.deployment!r} hold negative counts or spend", hint="values ≥ 0"
            )

    @property
    def minutes(self) -> int:
        return len(self.requests)


@dataclass(frozen=True)
class Alert:
    """One anomaly, as a person reads it."""

    deployment: str
    series: Series
    detector: str  # "jump" or "drift"
    at: datetime
    minute: int
    observed: float
    baseline: float
    deviation_rel: float  # (observed - baseline) / baseline
    robust_z: float
    unit: str
    action: str

    @property
    def kind(self) -> str:
        """The event name's suffix: ``thrifty.anomaly.<kind>``."""
        return f"{self.series}.{self.detector}"

    def message(self) -> str:
        reference = "the same hour yesterday" if self.detector == "drift" else "its recent median"
        return (
            f"{self.deployment}: {self.series} {self.observed:.4g} {self.unit} vs {self.baseline:.4g} "
            f"({reference}), {self.deviation_rel:+.0%}, robust z {self.robust_z:.1f} — {self.action}"
        )

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"kind": self.kind}


# -- series ------------------------------------------------------------------------------------
def _window_sum(values: FloatArray, width: int) -> FloatArray:
    """Sum of the last ``width`` minutes up to and including each minute (fewer at the start)."""
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values))])
    index = np.arange(1, len(values) + 1)
    result: FloatArray = csum[index] - csum[np.maximum(index - width, 0)]
    return result


def derive(metrics: MinuteMetrics, series: Series, rule: SeriesRule) -> FloatArray:
    """The value each minute judges (NaN where too few requests to judge)."""
    requests = _window_sum(np.asarray(metrics.requests, dtype=np.float64), rule.window_min)
    enough = requests >= max(rule.min_requests, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if series == "traffic":
            return requests / rule.window_min
        if series == "cost":
            value = _window_sum(np.asarray(metrics.usd, dtype=np.float64), rule.window_min) / requests * 1e6
        elif series == "errors":
            value = _window_sum(np.asarray(metrics.errors, dtype=np.float64), rule.window_min) / requests
        else:
            value = _trailing(
                np.asarray(metrics.latency_ms_p95, dtype=np.float64),
                rule.window_min,
                centered=False,
                upper=0.5,
            )[0]
    result: FloatArray = np.where(enough, value, np.nan)
    return result


def _trailing(
    values: FloatArray, width: int, *, centered: bool, upper: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Median, MAD and ``upper`` quantile of each minute's window (trailing, or centered on it).

    NaN where the window is less than half full.
    """
    half = width // 2
    pad_left, pad_right = (half, half) if centered else (width - 1, 0)
    padded = np.concatenate([np.full(pad_left, np.nan), values, np.full(pad_right, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1 if centered else width)
    ordered = np.sort(windows, axis=1)  # NaN sort last
    count = np.isfinite(ordered).sum(axis=1)
    median = _quantile_sorted(ordered, count, 0.5)
    spread = np.sort(np.abs(windows - median[:, None]), axis=1)
    valid = count >= max(windows.shape[1] // 2, 1)
    parts = (median, _quantile_sorted(spread, count, 0.5), _quantile_sorted(ordered, count, upper))
    return tuple(np.where(valid, a, np.nan) for a in parts)  # type: ignore[return-value]


def _quantile_sorted(ordered: FloatArray, count: IntArray, q: float) -> FloatArray:
    """The ``q`` quantile of each row's first ``count`` values (rows sorted, NaN last; linear)."""
    position = np.maximum(count - 1, 0) * q
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(count - 1, 0))
    below = np.take_along_axis(ordered, low[:, None], axis=1)[:, 0]
    above = np.take_along_axis(ordered, high[:, None], axis=1)[:, 0]
    result: FloatArray = below + (above - below) * (position - low)
    return result


def _shift(values: FloatArray, minutes: int) -> FloatArray:
    """``values`` moved later by ``minutes`` (NaN where nothing was known yet)."""
    shifted = np.full_like(values, np.nan)
    if minutes < len(values):
        shifted[minutes:] = values[: len(values) - minutes]
    return shifted


def _ewma(values: FloatArray, halflife_min: float) -> FloatArray:
    """Exponentially weighted mean that skips NaN minutes (causal; NaN until the first value)."""
    import pandas as pd

    alpha = 1.0 - 0.5 ** (1.0 / halflife_min)
    smoothed = pd.Series(values).ewm(alpha=alpha, adjust=False, ignore_na=True).mean()
    result: FloatArray = smoothed.to_numpy(dtype=np.float64)
    return result


# -- detection ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """What a value is compared with: a median, a robust σ and a high quantile, per minute."""

    median: FloatArray
    scale: FloatArray
    high: FloatArray


@dataclass(frozen=True)
class Baselines:
    recent: Reference  # the past baseline_min minutes, before the current window
    yesterday: Reference  # around the same minute a day earlier (NaN in the first day)
    smoothed: FloatArray  # EWMA of the value, for drifts


def _noise(series: Series, level: FloatArray, requests: FloatArray, rule: SeriesRule) -> FloatArray:
    """Counting noise of a value measured over ``requests`` requests (σ a flat MAD would hide)."""
    n = np.maximum(requests, 1.0)
    if series == "traffic":
        noise = np.sqrt(np.maximum(level, 1.0 / rule.window_min) * rule.window_min) / rule.window_min
    elif series == "errors":
        noise = np.sqrt(np.maximum(level, ERROR_RATE_PRIOR) / n)
    else:
        noise = np.abs(level) / np.sqrt(n)  # a ratio or a p95 from n requests: relative σ ≈ 1/√n
    result: FloatArray = noise
    return result


def _pooled_rate(x: FloatArray, requests: FloatArray, width: int, *, centered: bool) -> FloatArray:
    """Σ events / Σ requests over each minute's window of windows (trailing or centered)."""
    events = _window_sum(np.nan_to_num(x) * requests * np.isfinite(x), width)
    seen = _window_sum(requests * np.isfinite(x), width)
    if centered:  # the trailing sum ending ``width // 2`` minutes later is the centered one
        events, seen = (np.append(a[width // 2 :], np.full(width // 2, np.nan)) for a in (events, seen))
    with np.errstate(divide="ignore", invalid="ignore"):
        result: FloatArray = events / seen
    return result


def _reference(
    series: Series, x: FloatArray, requests: FloatArray, rule: SeriesRule, width: int, *, centered: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    median, mad, high = _trailing(x, width, centered=centered, upper=UPPER_QUANTILE)
    if series == "errors":  # most windows see no error: the median rate says 0; pool them instead
        median = np.where(np.isfinite(median), _pooled_rate(x, requests, width, centered=centered), np.nan)
    scale = np.maximum(MAD_TO_SIGMA * np.nan_to_num(mad), rule.scale_rel * np.abs(np.nan_to_num(median)))
    return median, scale, high


def baselines(
    series: Series, x: FloatArray, requests: FloatArray, rule: SeriesRule, config: DetectorConfig
) -> Baselines:
    """The recent and yesterday references and the EWMA, each from minutes before the judged one."""
    recent = _reference(series, x, requests, rule, config.baseline_min, centered=False)
    around = _reference(series, x, requests, rule, 2 * config.yesterday_halfwidth_min + 1, centered=True)
    noise_recent = _noise(series, _shift(recent[0], rule.window_min), requests, rule)
    noise_yesterday = _noise(series, _shift(around[0], DAY_MIN), requests, rule)
    return Baselines(
        _shifted(recent, rule.window_min, noise_recent),
        _shifted(around, DAY_MIN, noise_yesterday),
        _ewma(x, config.drift_halflife_min),
    )


def _shifted(parts: tuple[FloatArray, FloatArray, FloatArray], minutes: int, noise: FloatArray) -> Reference:
    median, scale, high = (_shift(a, minutes) for a in parts)
    return Reference(median, np.maximum(np.maximum(scale, np.nan_to_num(noise)), 1e-12), high)


def _clears_floor(series: Series, rise: FloatArray, requests: FloatArray, rule: SeriesRule) -> BoolArray:
    """Whether a rise matters in absolute terms; for cost, in dollars a day at the current traffic.

    ``requests`` are those in the judged window.
    """
    rise = np.nan_to_num(rise, nan=-np.inf)
    with np.errstate(invalid="ignore"):
        per_day = rise / 1e6 * requests / rule.window_min * DAY_MIN if series == "cost" else rise
        result: BoolArray = (per_day >= rule.floor) & (rise * requests >= rule.min_events)
    return result


def _rolling_max(values: FloatArray, width: int) -> FloatArray:
    """Largest value of the ``width`` minutes up to each minute (NaN ignored)."""
    padded = np.concatenate([np.full(width - 1, -np.inf), np.nan_to_num(values, nan=-np.inf)])
    result: FloatArray = np.lib.stride_tricks.sliding_window_view(padded, width).max(axis=1)
    return result


def _above(value: FloatArray, ref: Reference, z: float, min_rel: float) -> BoolArray:
    """Far above ``ref``: robust z, at least ``min_rel`` over its median, above its high quantile."""
    with np.errstate(invalid="ignore"):
        far = (
            (value - ref.median >= z * ref.scale)
            & (value >= ref.median * (1.0 + min_rel))
            & (value > ref.high)
        )
    result: BoolArray = far & np.isfinite(value) & np.isfinite(ref.median)
    return result


def _held(condition: BoolArray, minutes: int) -> BoolArray:
    """True where ``condition`` has held for the last ``minutes`` minutes in a row."""
    run = np.zeros(len(condition), dtype=np.int64)
    count = 0
    for i, flag in enumerate(condition):
        count = count + 1 if flag else 0
        run[i] = count
    result: BoolArray = run >= minutes
    return result


def _spend_rose(
    metrics: MinuteMetrics, rule: SeriesRule, config: DetectorConfig
) -> tuple[BoolArray, BoolArray]:
    """(jump, drift) of dollars per minute, judged like any series but without counting noise.

    Spend is what moves when something costs more (replicas, price); $/1M alone also moves when
    traffic falls, which is the hibernation policy's business, not a cost alarm.
    """
    spend = _window_sum(np.asarray(metrics.usd, dtype=np.float64), rule.window_min)
    recent = _reference("cost", spend, spend, rule, config.baseline_min, centered=False)
    around = _reference("cost", spend, spend, rule, 2 * config.yesterday_halfwidth_min + 1, centered=True)
    no_noise = np.zeros(len(spend))
    recent_ref, yesterday_ref = (
        _shifted(recent, rule.window_min, no_noise),
        _shifted(around, DAY_MIN, no_noise),
    )
    jump = _above(spend, recent_ref, config.z, rule.min_rel) & (
        ~np.isfinite(yesterday_ref.median) | _above(spend, yesterday_ref, config.z_yesterday, rule.min_rel)
    )
    smoothed = _ewma(spend, config.drift_halflife_min)
    return jump, _above(smoothed, yesterday_ref, config.z_yesterday, config.drift_rel)


def _ratio_rose(x: FloatArray, base: FloatArray, min_rel: float) -> BoolArray:
    with np.errstate(invalid="ignore"):
        result: BoolArray = (x >= base * (1.0 + min_rel)) & np.isfinite(x) & np.isfinite(base)
    return result


def _cost_conditions(
    metrics: MinuteMetrics, x: FloatArray, base: Baselines, requests: FloatArray, config: DetectorConfig
) -> tuple[BoolArray, BoolArray]:
    """Cost: spend jumped (or drifted) *and* $/1M rose by half the relative bar, above the $/day floor."""
    rule = config.rules["cost"]
    spend_jump, spend_drift = _spend_rose(metrics, rule, config)
    jump = (
        spend_jump
        & _ratio_rose(x, base.recent.median, rule.min_rel / 2)
        & _clears_floor("cost", x - base.recent.median, requests, rule)
    )
    drift = (
        spend_drift
        & _above(base.smoothed, base.yesterday, config.z_yesterday, config.drift_rel)
        & _clears_floor("cost", base.smoothed - base.yesterday.median, requests, rule)
    )
    if "cost" not in config.drift_series:
        drift = np.zeros(len(x), dtype=bool)
    return _held(jump, config.confirm_min), _held(drift, config.drift_confirm_min)


def _bursty(x: FloatArray, rule: SeriesRule) -> tuple[BoolArray, FloatArray]:
    """Whether the last day peaked over ``BURSTY_PEAK_RATIO`` × its median, and that peak."""
    peak = _shift(_rolling_max(x, DAY_MIN), rule.window_min)
    median = _shift(_trailing(x, DAY_MIN, centered=False, upper=0.5)[0], rule.window_min)
    with np.errstate(invalid="ignore"):
        bursty: BoolArray = peak > BURSTY_PEAK_RATIO * np.maximum(np.nan_to_num(median), 1e-9)
    return bursty, peak


def _conditions(
    metrics: MinuteMetrics,
    series: Series,
    x: FloatArray,
    base: Baselines,
    requests: FloatArray,
    config: DetectorConfig,
) -> tuple[BoolArray, BoolArray]:
    """(jump, drift) per minute, each already held for its confirmation time."""
    if series == "cost":
        return _cost_conditions(metrics, x, base, requests, config)
    rule = config.rules[series]
    no_yesterday = ~np.isfinite(base.yesterday.median)
    jump = (
        _above(x, base.recent, config.z, rule.min_rel)
        & _clears_floor(series, x - base.recent.median, requests, rule)
        & (no_yesterday | _above(x, base.yesterday, config.z_yesterday, rule.min_rel))
    )
    if series in config.beyond_day_max:
        bursty, peak = _bursty(x, rule)
        jump &= ~bursty | (x > peak)
    if series not in config.drift_series:
        return _held(jump, config.confirm_min), np.zeros(len(x), dtype=bool)
    drift = _above(base.smoothed, base.yesterday, config.z_yesterday, config.drift_rel) & _clears_floor(
        series, base.smoothed - base.yesterday.median, requests, rule
    )
    return _held(jump, config.confirm_min), _held(drift, config.drift_confirm_min)


def detect_series(
    metrics: MinuteMetrics, series: Series, config: DetectorConfig | None = None
) -> list[Alert]:
    """Alerts on one series, at most one per ``cooldown_min``."""
    config = config or DetectorConfig()
    rule = config.rules[series]
    x = derive(metrics, series, rule)
    requests = _window_sum(np.asarray(metrics.requests, dtype=np.float64), rule.window_min)
    base = baselines(series, x, requests, rule, config)
    jump, drift = _conditions(metrics, series, x, base, requests, config)
    alerts: list[Alert] = []
    quiet_until = -1
    for minute in np.flatnonzero(jump | drift):
        if minute < quiet_until:
            continue
        alerts.append(_alert(metrics, series, rule, int(minute), x, base, bool(jump[minute])))
        quiet_until = int(minute) + config.cooldown_min
    return alerts


def _alert(
    metrics: MinuteMetrics,
    series: Series,
    rule: SeriesRule,
    minute: int,
    x: FloatArray,
    base: Baselines,
    jump: bool,
) -> Alert:
    ref = base.recent if jump else base.yesterday
    observed = x[minute] if jump else base.smoothed[minute]
    baseline, scale = ref.median[minute], ref.scale[minute]
    return Alert(
        deployment=metrics.deployment,
        series=series,
        detector="jump" if jump else "drift",
        at=metrics.start + timedelta(minutes=minute),
        minute=minute,
        observed=float(observed),
        baseline=float(baseline),
        deviation_rel=float((observed - baseline) / baseline) if baseline > 0 else float("inf"),
        robust_z=float((observed - baseline) / scale),
        unit=rule.unit,
        action=rule.action,
    )


def detect(
    metrics: MinuteMetrics, config: DetectorConfig | None = None, series: Sequence[Series] = SERIES
) -> list[Alert]:
    """Every alert over the metrics' span, in time order (a scheduled run keeps those after its last)."""
    config = config or DetectorConfig()
    unknown = [s for s in series if s not in config.rules]
    if unknown:
        raise ConfigError(f"unknown series {unknown}", hint=f"choose from {', '.join(SERIES)}")
    alerts = [a for s in series for a in detect_series(metrics, s, config)]
    return sorted(alerts, key=lambda a: (a.minute, a.series))


# -- from the gateway's request log ------------------------------------------------------------
def metrics_from_requests(
    deployment: str,
    rows: Sequence[tuple[datetime, float, int]],
    start: datetime,
    minutes: int,
    usd_per_minute: FloatArray | float,
) -> MinuteMetrics:
    """One-minute rollups of ``(at, latency_ms, status_code)`` rows in ``[start, start + minutes)``.

    A status of 500 or more is an error (4xx is the client's). Spend comes from the caller (the
    ledger, or replicas × the price in force), one value per minute or one for all.
    """
    if start.tzinfo is None:
        raise ConfigError("start is a naive datetime", hint="pass a timezone-aware UTC datetime")
    index = np.array([int((at - start).total_seconds() // 60) for at, _, _ in rows], dtype=np.int64)
    keep = (index >= 0) & (index < minutes)
    index = index[keep]
    latency = np.array([r[1] for r in rows], dtype=np.float64)[keep]
    failed = np.array([r[2] >= 500 for r in rows], dtype=np.float64)[keep]
    requests = np.bincount(index, minlength=minutes).astype(np.float64)
    errors = np.bincount(index, weights=failed, minlength=minutes).astype(np.float64)
    p95 = np.full(minutes, np.nan)
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(minutes + 1))
    for minute in np.flatnonzero(requests):
        p95[minute] = np.percentile(latency[order][bounds[minute] : bounds[minute + 1]], 95)
    usd = np.broadcast_to(np.asarray(usd_per_minute, dtype=np.float64), (minutes,)).copy()
    return MinuteMetrics(deployment, start, requests, errors, p95, usd)
