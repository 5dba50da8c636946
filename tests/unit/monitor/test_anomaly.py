"""The anomaly detector on hand-made series: each case says why it should or should not alert."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from thrifty.errors import ConfigError
from thrifty.monitor.anomaly import DAY_MIN, DEFAULT_RULES, Alert, DetectorConfig, MinuteMetrics, detect

START = datetime(2026, 2, 2, tzinfo=UTC)
MINUTES = 600  # 10 h: past the 2-h baseline with room for an anomaly at minute 300
AT = 300


def make(
    minutes: int = MINUTES,
    rate: float = 100.0,
    latency_ms: float = 100.0,
    error_rate: float = 0.002,
    usd_per_min: float = 0.01,
    seed: int = 0,
    edit: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> MinuteMetrics:
    """Steady Poisson traffic, p95 with 1/√n noise, Bernoulli errors, flat spend; ``edit`` injects."""
    rng = np.random.default_rng(seed)
    series = {
        "rate": np.full(minutes, rate),
        "latency": np.full(minutes, latency_ms),
        "error_rate": np.full(minutes, error_rate),
        "usd": np.full(minutes, usd_per_min),
    }
    if edit is not None:
        edit(series)
    requests = rng.poisson(series["rate"]).astype(float)
    noise = np.exp(rng.normal(0.0, 1.0, minutes) / np.sqrt(np.maximum(requests, 1.0)))
    latency = np.where(requests > 0, series["latency"] * noise, np.nan)
    errors = rng.binomial(requests.astype(np.int64), series["error_rate"]).astype(float)
    return MinuteMetrics("m", START, requests, errors, latency, series["usd"])


def during(
    name: str, factor: float = 1.0, add: float = 0.0, length: int = 30
) -> Callable[[dict[str, np.ndarray]], None]:
    def edit(series: dict[str, np.ndarray]) -> None:
        series[name][AT : AT + length] = series[name][AT : AT + length] * factor + add

    return edit


def kinds(alerts: list[Alert]) -> set[str]:
    return {a.kind for a in alerts}


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        # steady everything: medians and MADs describe it, nothing is news
        (make(), set()),
        # traffic ×3 for 10 min: robust z far over 6, +200 %, +200 req/min over the floor
        (make(edit=during("rate", 3.0, length=10)), {"traffic.jump"}),
        # ×2.5 on 2 req/min is +3 req/min: under the 5 req/min floor, not worth a person's time
        (make(rate=2.0, edit=during("rate", 2.5, length=10)), set()),
        # a drop in traffic is the hibernation policy's business; $/1M rises but spend did not
        (make(edit=during("rate", 0.3, length=60)), set()),
        # p95 100 → 150 ms for 30 min: +50 ms clears the +20 ms floor, z is large at 100 req/min
        (make(edit=during("latency", 1.5)), {"latency.jump"}),
        # p95 20 → 35 ms is +75 % but only +15 ms: under the +20 ms floor
        (make(latency_ms=20.0, edit=during("latency", 1.75)), set()),
        # errors 0.2 % → 5 % at 100 req/min: ~48 more failures in 10 min
        (make(edit=during("error_rate", add=0.048, length=15)), {"errors.jump"}),
        # spend +30 % for 30 min at steady traffic: $/1M up 30 %, $4/day more (floor $0.10/day)
        (make(edit=during("usd", 1.3)), {"cost.jump"}),
        # the same +30 % on a deployment spending 1.4 ¢ a day: +0.4 ¢/day, under the floor
        (make(usd_per_min=1e-5, edit=during("usd", 1.3)), set()),
        # spend +30 % because traffic +30 %: autoscaling doing its job, $/1M unchanged, so no cost
        # alert; the traffic shift itself is news (+30 req/min, z ≈ 7 at 100 req/min)
        (make(edit=lambda s: (during("usd", 1.3)(s), during("rate", 1.3)(s))), {"traffic.jump"}),
    ],
)
def test_what_alerts_and_what_does_not(metrics: MinuteMetrics, expected: set[str]) -> None:
    alerts = detect(metrics)
    assert kinds(alerts) == expected, [a.message() for a in alerts]
    for alert in alerts:  # found within 10 minutes of the start, never before it
        assert AT <= alert.since_minute <= alert.minute <= AT + 10


def test_alert_reads_like_a_sentence() -> None:
    (alert,) = detect(make(edit=during("latency", 1.5)))
    assert alert.kind == "latency.jump" and alert.unit == "ms"
    assert 130 < alert.observed < 190 and 90 < alert.baseline < 110
    assert alert.deviation_rel == pytest.approx(alert.observed / alert.baseline - 1)
    assert alert.robust_z >= 3.0
    text = alert.message()
    assert text.startswith("m: latency ") and "its usual level" in text and "roll back" in text
    assert f"over the last {alert.minute - alert.since_minute + 1} min" in text
    assert alert.at == START.replace(minute=0) + (alert.at - START) and alert.at.tzinfo is not None
    assert alert.row()["kind"] == "latency.jump"


def diurnal(minutes: int, peak: float = 400.0) -> np.ndarray:
    """Quiet nights, a steep morning ramp (×8 within an hour), the same every day."""
    hour = (np.arange(minutes) % DAY_MIN) / 60.0
    return 50.0 + (peak - 50.0) / (1.0 + np.exp(-(hour - 8.0) * 6.0)) * (hour < 20)


def test_the_same_hour_yesterday_silences_a_daily_ramp() -> None:
    minutes = 2 * DAY_MIN

    def ramp(series: dict[str, np.ndarray]) -> None:
        series["rate"] = diurnal(minutes)

    alerts = detect(make(minutes, edit=ramp), series=["traffic"])
    # day 0 has no yesterday: the morning ramp looks like a jump; on day 1 it is yesterday's ramp
    assert any(a.minute < DAY_MIN for a in alerts)
    assert [a for a in alerts if a.minute >= DAY_MIN] == []


def drifting(minutes: int, start: int) -> MinuteMetrics:
    def drift(series: dict[str, np.ndarray]) -> None:
        series["usd"][start : start + 360] *= 1.0 + 0.6 * np.arange(360) / 360

    return make(minutes, edit=drift)


@pytest.mark.parametrize(("minutes", "start"), [(2 * DAY_MIN, DAY_MIN + 600), (DAY_MIN, 600)])
def test_a_slow_drift_is_found_as_a_drift(minutes: int, start: int) -> None:
    alerts = detect(drifting(minutes, start), series=["cost"])
    # the baseline ends lag_min ago, so a drift pulls away from it; the rise was building before
    # the crossing run, so it reads as a drift — with or without a day of history
    assert alerts and {a.kind for a in alerts} == {"cost.drift"} and len(alerts) <= 360 // 60
    assert start < alerts[0].minute <= start + 180
    assert alerts[0].deviation_rel >= DEFAULT_RULES["cost"].min_rel


def test_a_price_rise_is_found_with_replicas_whatever_the_traffic() -> None:
    # spend per replica-minute is the price in force: traffic does not move it. Traffic doubles
    # and a second replica starts; only when each replica-minute also costs 30 % more is it news
    def scaled(price: float) -> MinuteMetrics:
        def edit(series: dict[str, np.ndarray]) -> None:
            during("usd", 2.0 * price)(series)
            during("rate", 2.0)(series)

        replicas = np.ones(MINUTES)
        replicas[AT : AT + 30] = 2.0
        return replace(make(edit=edit), replicas=replicas)

    alerts = detect(scaled(1.3), series=["cost"])
    assert [a.kind for a in alerts] == ["cost.jump"] and AT <= alerts[0].minute <= AT + 10
    assert detect(scaled(1.0), series=["cost"]) == []  # autoscaling doing its job


def test_cooldown_spaces_alerts_on_a_held_shift() -> None:
    metrics = make(edit=during("latency", 2.0, length=200))
    quick = detect(metrics, DetectorConfig(cooldown_min=20))
    alerts = detect(metrics)
    minutes = [a.minute for a in alerts]
    assert all(b - a >= 60 for a, b in itertools.pairwise(minutes))
    # the shift soon becomes the new normal: the baseline follows it within ~2 h either way
    assert 1 <= len(alerts) <= len(quick)


@pytest.mark.parametrize("cut", [AT + 5, AT + 40, MINUTES - 50])
def test_alerts_never_use_the_future(cut: int) -> None:
    metrics = make(edit=during("rate", 3.0, length=10))
    rng = np.random.default_rng(9)
    future = metrics.requests.copy()
    future[cut:] = rng.poisson(500, MINUTES - cut)  # a wild future
    changed = replace(metrics, requests=future)
    before = [a for a in detect(metrics) if a.minute < cut]
    assert [a.row() for a in before] == [a.row() for a in detect(changed) if a.minute < cut]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: MinuteMetrics("m", datetime(2026, 1, 1), np.ones(3), np.zeros(3), np.ones(3), np.ones(3)),
            "naive",
        ),
        (lambda: MinuteMetrics("m", START, np.ones(3), np.zeros(2), np.ones(3), np.ones(3)), "lengths"),
        (lambda: MinuteMetrics("m", START, -np.ones(3), np.zeros(3), np.ones(3), np.ones(3)), "negative"),
        (lambda: DetectorConfig(baseline_min=5), "baseline"),
        (lambda: DetectorConfig(threshold=0), "threshold"),
        (lambda: DetectorConfig(rearm_min=-1), "rearm"),
        (
            lambda: MinuteMetrics("m", START, np.ones(3), np.zeros(3), np.ones(3), np.ones(3), np.ones(2)),
            "lengths",
        ),
        (lambda: detect(make(minutes=30), series=["cpu"]), "unknown series"),  # type: ignore[list-item]
    ],
)
def test_bad_input_is_named(build: Callable[[], object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


def test_rollups_from_the_request_log() -> None:
    from datetime import timedelta

    from thrifty.monitor.anomaly import metrics_from_requests

    def at(minute: int, second: int = 0) -> datetime:
        return START + timedelta(minutes=minute, seconds=second)

    rows = [(at(0, 1), 10.0, 200), (at(0, 59), 30.0, 503), (at(2), 50.0, 404), (at(5), 1.0, 200)]
    rows.append((START - timedelta(seconds=1), 99.0, 500))  # before the window: left out
    metrics = metrics_from_requests("m", rows, START, 3, 0.02)
    assert metrics.requests.tolist() == [2, 0, 1]
    assert metrics.errors.tolist() == [1, 0, 0]  # a 404 is the client's error, not the deployment's
    assert metrics.latency_ms_p95[0] == pytest.approx(np.percentile([10.0, 30.0], 95))
    assert np.isnan(metrics.latency_ms_p95[1]) and metrics.latency_ms_p95[2] == 50.0
    assert metrics.usd.tolist() == [0.02] * 3


def timer(
    minutes: int = MINUTES,
    per_batch: float = 120.0,
    every_min: int = 5,
    edit: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> MinuteMetrics:
    """A timer-triggered function: a batch of requests every ``every_min`` minutes, nothing between."""

    def batches(series: dict[str, np.ndarray]) -> None:
        series["rate"] = np.where(np.arange(minutes) % every_min == 0, per_batch, 0.0)
        if edit is not None:
            edit(series)

    return make(minutes, edit=batches)


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        # a batch every 5 minutes is a steady 24 requests/min, not a burst every 5 minutes
        (timer(), set()),
        # each batch three times as big for 10 min: two batches, +48 requests/min over the window
        (timer(edit=during("rate", 3.0, length=10)), {"traffic.jump"}),
        # 5 % of two batches fail (~12 failures where 0.5 were usual): found although only two
        # minutes in the burst carry requests
        (timer(edit=during("error_rate", add=0.048, length=10)), {"errors.jump"}),
    ],
)
def test_batches_are_judged_over_the_window(metrics: MinuteMetrics, expected: set[str]) -> None:
    alerts = detect(metrics)
    assert kinds(alerts) == expected, [a.message() for a in alerts]
    for alert in alerts:
        assert AT <= alert.minute <= AT + 10


def test_a_few_failures_of_few_requests_are_not_a_burst() -> None:
    # 2 failures in 10 min of 10 requests/min (0.2 expected): binomially unlikely, but under the
    # 3-event minimum and the +1 point floor of a rise that is worth a person's time
    def two_failures(series: dict[str, np.ndarray]) -> None:
        series["error_rate"][AT : AT + 10] = 0.02

    assert detect(make(rate=10.0, edit=two_failures), series=["errors"]) == []


def daily_burst(at_minute: int, rate: float = 400.0, length: int = 3) -> MinuteMetrics:
    """40 requests/min with a 3-minute burst of 400/min at 02:00 on day 0 — and on day 1, ``rate``
    for ``length`` minutes at ``at_minute`` past midnight."""

    def bursts(series: dict[str, np.ndarray]) -> None:
        series["rate"][120:123] = 400.0
        series["rate"][DAY_MIN + at_minute : DAY_MIN + at_minute + length] = rate

    return make(2 * DAY_MIN, rate=40.0, edit=bursts)


@pytest.mark.parametrize(
    ("burst", "expected"),
    [
        (daily_burst(120), set()),  # yesterday's burst at the same time: not news
        (daily_burst(140), set()),  # 20 minutes later than yesterday: a daily job wanders
        (daily_burst(720), {"traffic.jump"}),  # the same burst at noon, when yesterday was quiet
        # ×3 for 10 min at 00:45: far under the burst of the past day, but nothing like 00:45
        # yesterday (a burst elsewhere in the day no longer hides it)
        (daily_burst(45, rate=120.0, length=10), {"traffic.jump"}),
    ],
)
def test_a_burst_that_comes_back_daily_is_not_news(burst: MinuteMetrics, expected: set[str]) -> None:
    alerts = [a for a in detect(burst, series=["traffic"]) if a.minute >= DAY_MIN]
    assert kinds(alerts) == expected, [a.message() for a in alerts]


def test_a_new_anomaly_alerts_within_the_cooldown_of_an_ended_one() -> None:
    # a 10-minute ×3 spike, back to normal, then 30 minutes later another: two episodes, two alerts
    # (one alert, as before, for a held shift: test_cooldown_spaces_alerts_on_a_held_shift)
    def two_spikes(series: dict[str, np.ndarray]) -> None:
        during("rate", 3.0, length=10)(series)
        series["rate"][AT + 40 : AT + 50] *= 3.0

    alerts = detect(make(edit=two_spikes), series=["traffic"])
    assert [a.kind for a in alerts] == ["traffic.jump"] * 2, [a.message() for a in alerts]
    assert AT <= alerts[0].minute <= AT + 10 and AT + 40 <= alerts[1].minute <= AT + 50
    one = detect(make(edit=two_spikes), DetectorConfig(rearm_min=60), series=["traffic"])
    assert len(one) == 1  # with episodes that must be quiet an hour apart, the cooldown holds
