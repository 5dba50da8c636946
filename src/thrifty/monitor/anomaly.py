"""Anomalies a person can read, in a deployment's per-minute cost, latency, errors and traffic.

Each series is judged minute by minute against a **baseline** — the larger of its median over the
past ``baseline_min`` minutes (ending ``lag_min`` ago, so an anomaly under way does not pull its
own baseline up) and its median around the same minute yesterday (so a daily ramp is not news) —
with a **noise model** that knows how the value was measured:

    traffic   requests/min     requests in the last 5 minutes, Poisson counts against the usual
                               rate, over-dispersion φ learnt from the series itself
    latency   p95 ms           log p95 from n requests: variance σ²/n, σ² learnt from the series
    errors    share failing    errors in the last 5 minutes, binomial against the past day's error
                               rate with the number of requests served
    cost      $/1M requests    spend per replica-minute (the price in force) when the rollups
                               carry replicas; else spend that rises while $/1M rises too

Counts are judged over 5-minute windows, not single minutes: a timer-triggered function that gets
a batch every few minutes then has the steady rate it really has, and its two batches of a
10-minute error burst are one piece of evidence. The learnt parts (φ, σ²) are robust spreads (MAD)
of the series' own standardised residuals over the past day, so a bursty function and a steady one
are each judged by their own yardstick. Traffic that stays within what the same hour yesterday saw
in a bursty hour (a daily job that wanders by half an hour) is not news; a burst elsewhere in the day
does not excuse an hour that was quiet yesterday.

A one-sided **CUSUM** (Page's test) adds up the evidence, as a log-likelihood ratio, that the
series has risen by the rule's ``shift_rel`` (or its absolute floor, if larger) above its baseline,
and alerts when that sum reaches ``threshold``. A large jump crosses in a minute or two; a smaller
lasting shift crosses after enough minutes agree; noise keeps pulling the sum back to zero. For a
given false-alert rate no test finds a lasting shift sooner (Lorden, 1971). Traffic runs a second
CUSUM tuned to a doubling (``jump_rel``), which finds a short ×3 spike on a noisy series that the
+25 % CUSUM would weigh too little.

An alert also has to matter: the rise over the run that crossed must clear the rule's absolute
floor (the cost floor is in $/day at the current traffic; latency +20 ms; …) and relative bar, or
it is not worth a person's time. A rise that had been building before its run crossed (or a
run longer than ``drift_after_min``) is reported as a ``drift``, a sudden one as a ``jump``. After
an alert a series stays quiet for ``cooldown_min`` while the episode goes on; once its evidence has
been silent for ``rearm_min`` the episode is over, and a new anomaly alerts even within the cooldown.
Only rises alert: a drop in cost, latency or errors is good news, and a drop in traffic is the
hibernation policy's business.

Every alert is causal: it depends only on minutes up to its own (tests perturb the future).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from thrifty.errors import ConfigError
from thrifty.policies.base import FloatArray

BoolArray = NDArray[np.bool_]

Series = Literal["cost", "latency", "errors", "traffic"]
SERIES: tuple[Series, ...] = ("cost", "latency", "errors", "traffic")
DAY_MIN = 1440
MAD_TO_SIGMA = 1.4826
ERROR_RATE_PRIOR = 0.001  # the error rate assumed when the history saw none
COUNT_WINDOW_MIN = 5  # requests and errors are judged over the last 5 minutes (timers fire in batches)
BURSTY_PEAK_RATIO = 2.0  # an hour whose busiest minute is over 2× its median is bursty by nature
BURST_MARGIN = 1.5  # a daily burst may come back this much bigger (a ×3 spike is news)
BURST_HALFWIDTH_MIN = 45  # how far from the same minute yesterday a daily burst may wander
MIN_RATE_PER_MIN = 0.1  # the usual rate is never taken below this (an idle series' first request)
ERROR_SHIFT_FLOORS = 3.0  # the error CUSUM looks for a rise of three floors (3 points)
MIN_CALIBRATION = 60  # minutes of residuals needed before a series' own spread is trusted


@dataclass(frozen=True)
class SeriesRule:
    """How one series is judged: the shift it looks for, the floors a rise must clear, the action."""

    unit: str
    shift_rel: float  # the rise the CUSUM is tuned to find, as a fraction of the baseline
    min_rel: float  # a rise below this fraction of the baseline is ignored
    floor: float  # a rise below this (in floor_unit) is ignored
    floor_unit: str
    action: str
    min_events: float = 0.0  # for rates: a rise must also mean this many more events in the run
    scale_rel: float = 0.02  # noise is never taken below this relative σ (log units)
    baseline_q: float = 0.5  # the quantile of the recent and yesterday's windows that counts as usual
    jump_rel: float = 0.0  # > 0: a second CUSUM looks for a rise this large (sooner for big jumps)

    def __post_init__(self) -> None:
        if self.shift_rel <= 0 or self.min_rel < 0 or self.floor < 0 or self.scale_rel <= 0:
            raise ConfigError(
                f"series rule {self}", hint="shift_rel > 0, min_rel and floor ≥ 0, scale_rel > 0"
            )


DEFAULT_RULES: Mapping[Series, SeriesRule] = {
    "cost": SeriesRule(
        "$/1M requests",
        0.2,
        0.15,
        0.10,
        "$/day",
        "check replicas and the price in force (`thrifty costs`); scale in or re-plan (`thrifty plan`)",
    ),
    "latency": SeriesRule(
        "ms",
        0.3,
        0.2,
        20.0,
        "ms",
        "compare replicas with traffic; if it began with a new revision, roll back",
    ),
    "errors": SeriesRule(
        "share of requests",
        2.0,
        0.5,
        0.01,
        "share of requests",
        "read the gateway log for the failing status; if it began with a new revision, roll back",
        min_events=3.0,
    ),
    "traffic": SeriesRule(
        "requests/min",
        0.25,
        0.2,
        5.0,
        "requests/min",
        "confirm the traffic is wanted (a client retrying in a loop?) and that autoscaling keeps up",
        baseline_q=0.75,
        jump_rel=1.0,
    ),
}


@dataclass(frozen=True)
class DetectorConfig:
    """The detector's settings; ``rules`` per series (defaults: ``DEFAULT_RULES``)."""

    baseline_min: int = 120
    lag_min: int = 30
    yesterday_halfwidth_min: int = 20
    history_min: int = DAY_MIN  # the span a series' own noise is learnt from
    threshold: float = 10.0  # CUSUM log-likelihood ratio that makes an alert
    confirm_min: int = 3  # one minute adds at most threshold / confirm_min: no one-minute alerts
    drift_after_min: int = 60  # a crossing run longer than this is a drift
    cooldown_min: int = 60
    rearm_min: int = 15  # evidence silent this long ends an episode: the next one may alert in cooldown
    rules: Mapping[Series, SeriesRule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def __post_init__(self) -> None:
        if (
            self.baseline_min < 10
            or self.lag_min < 0
            or self.cooldown_min < 0
            or self.rearm_min < 0
            or self.threshold <= 0
            or self.confirm_min < 1
            or self.history_min < self.baseline_min
        ):
            raise ConfigError(
                f"detector settings baseline_min={self.baseline_min}, lag_min={self.lag_min}, "
                f"cooldown_min={self.cooldown_min}, rearm_min={self.rearm_min}, threshold={self.threshold}, "
                f"history_min={self.history_min}",
                hint="baseline ≥ 10 minutes, lag, cooldown and rearm ≥ 0, threshold > 0, history ≥ baseline",
            )


@dataclass(frozen=True)
class MinuteMetrics:
    """One deployment's one-minute rollups: minute ``i`` starts at ``start + i`` minutes (no gaps).

    ``replicas`` (replicas serving in each minute) is optional; with it, cost is judged as the price
    per replica-minute, which traffic does not move.
    """

    deployment: str
    start: datetime
    requests: FloatArray
    errors: FloatArray
    latency_ms_p95: FloatArray  # NaN in a minute without requests
    usd: FloatArray  # spend in that minute
    replicas: FloatArray | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ConfigError(f"metrics of {self.deployment!r} start at a naive datetime", hint="use UTC")
        arrays = [self.requests, self.errors, self.latency_ms_p95, self.usd]
        lengths = {len(a) for a in [*arrays, *([self.replicas] if self.replicas is not None else [])]}
        if len(lengths) != 1:
            raise ConfigError(
                f"metrics of {self.deployment!r} have series of lengths {sorted(lengths)}",
                hint="one value per minute in every series (0 requests and NaN latency when idle)",
            )
        negative = [np.asarray(a) < 0 for a in (self.requests, self.usd, self.replicas) if a is not None]
        if any(n.any() for n in negative):
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
    observed: float  # over the run that crossed
    baseline: float
    deviation_rel: float  # (observed - baseline) / baseline
    robust_z: float  # the run's rise in units of its noise
    unit: str
    action: str
    since_minute: int = 0  # where the crossing run began

    @property
    def kind(self) -> str:
        """The event name's suffix: ``thrifty.anomaly.<kind>``."""
        return f"{self.series}.{self.detector}"

    def message(self) -> str:
        span = self.minute - self.since_minute + 1
        return (
            f"{self.deployment}: {self.series} {self.observed:.4g} {self.unit} over the last {span} min vs "
            f"{self.baseline:.4g} (its usual level), {self.deviation_rel:+.0%}, z {self.robust_z:.1f} "
            f"— {self.action}"
        )

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"kind": self.kind}


# -- windows -----------------------------------------------------------------------------------
def _window_sum(values: FloatArray, width: int) -> FloatArray:
    """Sum of the last ``width`` minutes up to and including each minute (fewer at the start)."""
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values))])
    index = np.arange(1, len(values) + 1)
    result: FloatArray = csum[index] - csum[np.maximum(index - width, 0)]
    return result


def _median(values: FloatArray, width: int, *, centered: bool, q: float = 0.5) -> FloatArray:
    """The ``q`` quantile (median) of each minute's window (trailing, or centered on it).

    NaN where the window is under half full.
    """
    import pandas as pd

    size = 2 * (width // 2) + 1 if centered else width
    rolling = pd.Series(values).rolling(size, min_periods=max(size // 2, 1), center=centered)
    result: FloatArray = (rolling.median() if q == 0.5 else rolling.quantile(q)).to_numpy(np.float64)
    return result


def _shift(values: FloatArray, minutes: int) -> FloatArray:
    """``values`` moved later by ``minutes`` (NaN where nothing was known yet)."""
    shifted = np.full_like(values, np.nan)
    if minutes < len(values):
        shifted[minutes:] = values[: len(values) - minutes]
    return shifted


def _baseline(values: FloatArray, config: DetectorConfig, q: float = 0.5) -> FloatArray:
    """The larger of the lagged recent median and the median around the same minute yesterday.

    A higher quantile ``q`` (traffic: the upper quartile) means a return to a level the series held
    within the window — the end of a dip — is not news.
    """
    recent = _shift(_median(values, config.baseline_min, centered=False, q=q), config.lag_min + 1)
    around = _median(values, 2 * config.yesterday_halfwidth_min + 1, centered=True, q=q)
    yesterday = _shift(around, DAY_MIN)
    result: FloatArray = np.fmax(recent, yesterday)
    return result


def _spread(residuals: FloatArray, config: DetectorConfig, prior: float) -> FloatArray:
    """Robust variance of ``residuals`` over the past ``history_min``, refreshed each hour (causal).

    ``prior`` stands in until ``MIN_CALIBRATION`` residuals exist.
    """
    variance = np.full(len(residuals), prior)
    for hour_start in range(60, len(residuals), 60):
        past = residuals[max(0, hour_start - config.history_min) : hour_start]
        past = past[np.isfinite(past)]
        if past.size >= MIN_CALIBRATION:
            mad = float(np.median(np.abs(past - np.median(past))))
            variance[hour_start : hour_start + 60] = (MAD_TO_SIGMA * mad) ** 2
    return variance


# -- evidence per series -----------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """Per minute: the value, its baseline (both in the rule's unit), the LLR increment, its noise."""

    value: FloatArray
    baseline: FloatArray
    llr: FloatArray  # NaN where the minute says nothing
    variance: FloatArray  # of value − baseline, for the alert's z
    jump_llr: FloatArray | None = None  # the same for the rule's ``jump_rel`` (a second CUSUM)


def _gaussian_llr(residual: FloatArray, delta: FloatArray, variance: FloatArray) -> FloatArray:
    """Log-likelihood ratio of a shift ``delta`` against none, for a Gaussian residual."""
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = delta / variance * (residual - delta / 2.0)
    return result


def _traffic(metrics: MinuteMetrics, rule: SeriesRule, config: DetectorConfig) -> Evidence:
    """Requests in the last ``COUNT_WINDOW_MIN`` minutes against the usual rate, as Poisson counts.

    The quasi-Poisson log-likelihood ratio of a rise by ``shift_rel`` (or the floor) is divided by the
    series' own over-dispersion φ, and shared out over the window's minutes (each arrival is seen in
    ``COUNT_WINDOW_MIN`` windows). Judging windows, not single minutes, lets a timer that fires every
    few minutes be the steady rate it is.
    """
    counts = np.asarray(metrics.requests, dtype=np.float64)
    window = _window_sum(counts, COUNT_WINDOW_MIN)
    rate = np.maximum(_baseline(window, config, rule.baseline_q) / COUNT_WINDOW_MIN, MIN_RATE_PER_MIN)
    expected = rate * COUNT_WINDOW_MIN
    dispersion = _dispersion(window, expected, config)
    within = _within_daily_bursts(counts, window, rule.floor)

    def evidence_of(rise_rel: float) -> FloatArray:
        risen = expected + np.maximum(rise_rel * rate, rule.floor) * COUNT_WINDOW_MIN
        llr = _poisson_llr(window, expected, risen) / (dispersion * COUNT_WINDOW_MIN)
        return np.where(within, np.minimum(llr, 0.0), llr)

    jump = evidence_of(rule.jump_rel) if rule.jump_rel > 0 else None
    return Evidence(counts, rate, evidence_of(rule.shift_rel), dispersion * rate, jump)


def _within_daily_bursts(counts: FloatArray, window: FloatArray, floor: float) -> BoolArray:
    """Minutes whose window stays under ``BURST_MARGIN`` × the busiest window seen within
    ``BURST_HALFWIDTH_MIN`` of the same minute yesterday, when that hour yesterday was bursty (a
    minute over ``BURSTY_PEAK_RATIO`` × its median, or the floor): a burst that comes back daily,
    give or take half an hour, is not news."""
    import pandas as pd

    width = 2 * BURST_HALFWIDTH_MIN + 1
    minute_peak = _shift(pd.Series(counts).rolling(width, 1, center=True).max().to_numpy(), DAY_MIN)
    minute_usual = _shift(pd.Series(counts).rolling(width, 1, center=True).median().to_numpy(), DAY_MIN)
    window_peak = _shift(pd.Series(window).rolling(width, 1, center=True).max().to_numpy(), DAY_MIN)
    with np.errstate(invalid="ignore"):
        bursty = minute_peak > BURSTY_PEAK_RATIO * np.maximum(minute_usual, floor)
        within: BoolArray = bursty & (window <= BURST_MARGIN * window_peak)
    return within


def _poisson_llr(count: FloatArray, expected: FloatArray, risen: FloatArray) -> FloatArray:
    """log P(count | mean ``risen``) − log P(count | mean ``expected``), Poisson."""
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = count * np.log(risen / expected) - (risen - expected)
    return result


def _dispersion(window: FloatArray, expected: FloatArray, config: DetectorConfig) -> FloatArray:
    """Over-dispersion φ ≥ 1 of window counts: the robust variance of their Pearson residuals."""
    with np.errstate(invalid="ignore", divide="ignore"):
        residuals = (window - expected) / np.sqrt(expected)
    result: FloatArray = np.maximum(_spread(residuals, config, 1.0), 1.0)
    return result


def _latency(metrics: MinuteMetrics, rule: SeriesRule, config: DetectorConfig) -> Evidence:
    requests = np.asarray(metrics.requests, dtype=np.float64)
    p95 = np.asarray(metrics.latency_ms_p95, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        logged = np.where((requests > 0) & (p95 > 0), np.log(p95), np.nan)
    base = _baseline(logged, config)
    residual = logged - base
    n = np.maximum(requests, 1.0)
    sigma2 = np.maximum(_spread(residual * np.sqrt(n), config, 1.0), 1e-6)
    variance = np.maximum(sigma2 / n, rule.scale_rel**2)
    with np.errstate(invalid="ignore"):
        delta = np.maximum(np.log1p(rule.shift_rel), np.log1p(rule.floor / np.exp(base)))
    llr = _gaussian_llr(residual, delta, variance)
    llr = np.where(_load_rose(metrics, config), np.minimum(llr, 0.0), llr)
    return Evidence(p95, np.exp(base), llr, variance)


def _load_rose(metrics: MinuteMetrics, config: DetectorConfig) -> BoolArray:
    """Minutes whose load per replica is well above usual: slower answers are load, not a regression.

    Well above: over the past day's 90th percentile of load per replica, by more than three
    Poisson σ, so the counting noise of a quiet deployment never excuses a regression. Without replicas in the
    rollups, requests against their recent level stand in for load.
    """
    requests = np.asarray(metrics.requests, dtype=np.float64)
    replicas = np.ones(len(requests)) if metrics.replicas is None else np.asarray(metrics.replicas)
    with np.errstate(invalid="ignore", divide="ignore"):
        load = np.where(replicas > 0, requests / replicas, np.nan)
        busy = _median(load, min(config.history_min, DAY_MIN), centered=False, q=0.9)
        usual = np.maximum(_shift(busy, config.lag_min + 1), 1.0)
        expected = usual * replicas
        result: BoolArray = (load > usual) & (requests - expected > 3.0 * np.sqrt(expected))
    return result


def _pooled_rate(events: FloatArray, requests: FloatArray, config: DetectorConfig) -> FloatArray:
    """Σ events / Σ requests over the past ``history_min``, ending ``lag_min`` ago."""
    seen = _shift(_window_sum(requests, config.history_min), config.lag_min + 1)
    failed = _shift(_window_sum(events, config.history_min), config.lag_min + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = np.where(seen > 0, failed / seen, np.nan)
    return result


def _errors(metrics: MinuteMetrics, rule: SeriesRule, config: DetectorConfig) -> Evidence:
    """Errors among the last ``COUNT_WINDOW_MIN`` minutes' requests, as a binomial test against the
    past day's error rate; shared out over the window's minutes like traffic's."""
    requests = np.asarray(metrics.requests, dtype=np.float64)
    errors = np.asarray(metrics.errors, dtype=np.float64)
    p0 = np.maximum(np.nan_to_num(_pooled_rate(errors, requests, config), nan=0.0), ERROR_RATE_PRIOR)
    p1 = np.minimum(p0 + np.maximum(rule.shift_rel * p0, rule.floor * ERROR_SHIFT_FLOORS), 0.999)
    seen, failed = _window_sum(requests, COUNT_WINDOW_MIN), _window_sum(errors, COUNT_WINDOW_MIN)
    llr = _binomial_llr(failed, seen, p0, p1) / COUNT_WINDOW_MIN
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(requests > 0, errors / requests, np.nan)
    return Evidence(rate, p0, np.where(seen > 0, llr, np.nan), p0 * requests)


def _binomial_llr(failed: FloatArray, seen: FloatArray, p0: FloatArray, p1: FloatArray) -> FloatArray:
    """log P(failed of seen | rate ``p1``) − log P(failed of seen | rate ``p0``), binomial."""
    result: FloatArray = failed * np.log(p1 / p0) + (seen - failed) * np.log((1.0 - p1) / (1.0 - p0))
    return result


def _cost(metrics: MinuteMetrics, rule: SeriesRule, config: DetectorConfig) -> Evidence:
    """Spend per replica-minute (the price in force) when known; else spend gated by $/1M."""
    usd = np.asarray(metrics.usd, dtype=np.float64)
    if metrics.replicas is not None:
        replicas = np.asarray(metrics.replicas, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = np.where((replicas > 0) & (usd > 0), usd / replicas, np.nan)
        scale = replicas
    else:
        unit, scale = np.where(usd > 0, usd, np.nan), np.ones(len(usd))
    logged = np.log(unit)
    base = _baseline(logged, config)
    residual = logged - base
    variance = np.maximum(_spread(residual, config, rule.scale_rel**2), rule.scale_rel**2)
    llr = _gaussian_llr(residual, np.full(len(usd), np.log1p(rule.shift_rel)), variance)
    if metrics.replicas is None:  # spend that follows traffic is autoscaling doing its job
        llr = np.where(_per_million_rose(metrics, rule, config), llr, np.minimum(llr, 0.0))
    return Evidence(usd, np.exp(base) * scale, llr, variance)


def _per_million_rose(metrics: MinuteMetrics, rule: SeriesRule, config: DetectorConfig) -> BoolArray:
    """Whether $/1M requests over the last 15 minutes is above its baseline by half the bar."""
    spend = _window_sum(np.asarray(metrics.usd, dtype=np.float64), 15)
    requests = _window_sum(np.asarray(metrics.requests, dtype=np.float64), 15)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_million = np.where(requests > 0, spend / requests, np.nan)
        result: BoolArray = per_million >= _baseline(per_million, config) * (1.0 + rule.min_rel / 2)
    return result


EVIDENCE = {"traffic": _traffic, "latency": _latency, "errors": _errors, "cost": _cost}


# -- the test ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """The minutes ``first..last`` whose evidence crossed the threshold."""

    first: int
    last: int

    @property
    def span(self) -> slice:
        return slice(self.first, self.last + 1)


def _crossings(llr: FloatArray, threshold: float, confirm_min: int) -> list[Run]:
    """Page's CUSUM over ``llr`` (NaN minutes leave it unchanged); restarts after each crossing.

    Each minute adds at most ``threshold / confirm_min``, so one wild minute is never an alert.
    """
    runs: list[Run] = []
    total, first = 0.0, 0
    cap = threshold / confirm_min
    for minute, step in enumerate(np.minimum(llr, cap).tolist()):
        if step != step:  # NaN: the minute says nothing
            continue
        total += step
        if total <= 0.0:
            total, first = 0.0, minute + 1
        elif total >= threshold:
            runs.append(Run(first, minute))
            total, first = 0.0, minute + 1
    return runs


def _runs(evidence: Evidence, config: DetectorConfig) -> list[Run]:
    """The crossings of the shift CUSUM and, where the rule has one, the jump CUSUM, by end minute."""
    runs = _crossings(evidence.llr, config.threshold, config.confirm_min)
    if evidence.jump_llr is not None:
        runs += _crossings(evidence.jump_llr, config.threshold, config.confirm_min)
    return sorted(runs, key=lambda run: (run.last, run.first))


def _summary(
    series: Series, metrics: MinuteMetrics, evidence: Evidence, run: Run
) -> tuple[float, float, float]:
    """(observed, baseline, z) over the run, in the rule's unit ($/1M requests for cost)."""
    span = run.span
    requests = np.asarray(metrics.requests, dtype=np.float64)[span]
    if series == "errors":
        expected = float(np.sum(evidence.baseline[span] * requests))
        seen, failed = float(requests.sum()), float(np.nansum(np.asarray(metrics.errors)[span]))
        z = (failed - expected) / max(np.sqrt(expected), 1e-9)
        return failed / max(seen, 1.0), expected / max(seen, 1.0), z
    value, base = evidence.value[span], evidence.baseline[span]
    if series == "cost":  # $/1M requests; spend per minute while nothing was served
        seen = float(requests.sum())
        per = 1e6 / seen if seen > 0 else 1.0 / (run.last - run.first + 1)
        observed, baseline = float(np.nansum(value)) * per, float(np.nansum(base)) * per
    elif series == "latency":
        weights = np.where(np.isfinite(value), requests, 0.0)
        observed = float(np.exp(np.nansum(np.log(value) * weights) / max(weights.sum(), 1.0)))
        baseline = float(np.exp(np.nansum(np.log(base) * weights) / max(weights.sum(), 1.0)))
    else:
        observed, baseline = float(np.nanmean(value)), float(np.nanmean(base))
    noise = float(np.sqrt(np.nanmean(evidence.variance[span]) / max(run.last - run.first + 1, 1)))
    relative = np.log(observed / baseline) if series in ("cost", "latency") else observed - baseline
    return observed, baseline, float(relative / max(noise, 1e-12))


def _matters(
    series: Series,
    evidence: Evidence,
    metrics: MinuteMetrics,
    rule: SeriesRule,
    run: Run,
    summary: tuple[float, float, float],
) -> bool:
    """Whether the run's rise clears the rule's relative bar and absolute floor.

    Traffic and latency judge the floor on the rise less two σ of the run's own noise, so a few
    noisy minutes of a quiet deployment do not pass for a rise that matters.
    """
    observed, baseline, z = summary
    if not (np.isfinite(observed) and np.isfinite(baseline)) or observed < baseline * (1.0 + rule.min_rel):
        return False
    if series == "cost":  # dollars a day more, at the run's rate of spend
        rise_usd_per_min = float(
            np.nanmean(evidence.value[run.span]) - np.nanmean(evidence.baseline[run.span])
        )
        return rise_usd_per_min * DAY_MIN >= rule.floor
    if series == "errors":
        seen = float(np.sum(np.asarray(metrics.requests)[run.span]))
        rise = observed - baseline
        return rise >= rule.floor and rise * seen >= rule.min_events
    sure = max(1.0 - 2.0 / z, 0.0) if z > 0 else 0.0  # the share of the rise two σ leave standing
    if series == "latency":
        return bool(baseline * (np.exp(np.log(observed / baseline) * sure) - 1.0) >= rule.floor)
    return (observed - baseline) * sure >= rule.floor


def detect_series(
    metrics: MinuteMetrics, series: Series, config: DetectorConfig | None = None
) -> list[Alert]:
    """Alerts on one series, at most one per ``cooldown_min``."""
    config = config or DetectorConfig()
    rule = config.rules[series]
    evidence = EVIDENCE[series](metrics, rule, config)
    alerts: list[Alert] = []
    quiet_until, episode_last = -1, -1
    for run in _runs(evidence, config):
        episode_goes_on = run.first <= episode_last + config.rearm_min
        episode_last = max(episode_last, run.last) if episode_goes_on else run.last
        if run.last < quiet_until and episode_goes_on:
            continue
        summary = _summary(series, metrics, evidence, run)
        if not _matters(series, evidence, metrics, rule, run, summary):
            continue
        drift = run.last - run.first >= config.drift_after_min or _building(evidence, run, config)
        alerts.append(_alert(metrics, series, _unit(series, metrics, rule, run), run, summary, drift))
        quiet_until = run.last + config.cooldown_min
    return alerts


def _building(evidence: Evidence, run: Run, config: DetectorConfig) -> bool:
    """Whether the rise had been building before the run: in the ``drift_after_min`` before it the
    value already sat above its baseline by at least a third of the run's own excess (a drift)."""
    before = slice(max(run.first - config.drift_after_min, 0), run.first)
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.log(evidence.value / evidence.baseline)
    if not np.isfinite(excess[before]).any() or not np.isfinite(excess[run.span]).any():
        return False
    now = float(np.nanmean(excess[run.span]))
    return now > 0 and float(np.nanmean(excess[before])) >= now / 3.0


def _unit(series: Series, metrics: MinuteMetrics, rule: SeriesRule, run: Run) -> SeriesRule:
    """The rule, with cost in $/min when the run served no request ($/1M has no meaning then)."""
    if series == "cost" and float(np.sum(np.asarray(metrics.requests)[run.span])) == 0:
        return replace(rule, unit="$/min (no requests served)")
    return rule


def _alert(
    metrics: MinuteMetrics,
    series: Series,
    rule: SeriesRule,
    run: Run,
    summary: tuple[float, float, float],
    drift: bool,
) -> Alert:
    observed, baseline, z = summary
    return Alert(
        deployment=metrics.deployment,
        series=series,
        detector="drift" if drift else "jump",
        at=metrics.start + timedelta(minutes=run.last),
        minute=run.last,
        observed=observed,
        baseline=baseline,
        deviation_rel=observed / baseline - 1.0 if baseline > 0 else float("inf"),
        robust_z=z,
        unit=rule.unit,
        action=rule.action,
        since_minute=run.first,
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
    replicas: FloatArray | float | None = None,
) -> MinuteMetrics:
    """One-minute rollups of ``(at, latency_ms, status_code)`` rows in ``[start, start + minutes)``.

    A status of 500 or more is an error (4xx is the client's). Spend comes from the caller (the
    ledger, or replicas × the price in force), one value per minute or one for all; so do replicas.
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
    serving = (
        None
        if replicas is None
        else np.broadcast_to(np.asarray(replicas, dtype=np.float64), (minutes,)).copy()
    )
    return MinuteMetrics(deployment, start, requests, errors, p95, usd, serving)


__all__ = [
    "DAY_MIN",
    "DEFAULT_RULES",
    "SERIES",
    "Alert",
    "DetectorConfig",
    "MinuteMetrics",
    "SeriesRule",
    "detect",
    "detect_series",
    "metrics_from_requests",
]
