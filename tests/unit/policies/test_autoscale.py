"""The autoscale policy: out at once past the target, in one step per cool-down, within bounds."""

from __future__ import annotations

import pytest

from thrifty.errors import ConfigError
from thrifty.policies.autoscale import (
    AutoscaleSettings,
    ScaleState,
    decide_replicas,
    settings_from_plan,
    target_outstanding,
)

SETTINGS = AutoscaleSettings(
    min_replicas=1, max_replicas=4, target_outstanding_per_replica=2.0, scale_in_cooldown_s=10.0
)


@pytest.mark.parametrize(
    ("current", "outstanding", "expected"),
    [
        (1, 2.0, 1),  # at the target: one replica is enough
        (1, 2.5, 2),  # past it: ceil(2.5 / 2) = 2
        (1, 7.0, 4),  # ceil(7 / 2) = 4, all at once
        (2, 40.0, 4),  # never above max
        (3, 5.0, 3),  # 5 > (3 - 1) x 2 x 0.5: dropping one would leave them busy
    ],
)
def test_scale_out_is_immediate_and_bounded(current: int, outstanding: float, expected: int) -> None:
    assert decide_replicas(current, outstanding, SETTINGS, ScaleState(), now=100.0) == expected


def test_scale_in_waits_for_a_quiet_cool_down_and_steps_one_at_a_time() -> None:
    state = ScaleState()
    assert decide_replicas(3, 5.0, SETTINGS, state, now=0.0) == 3  # busy: remembered
    assert decide_replicas(3, 0.0, SETTINGS, state, now=9.9) == 3  # quiet, but within the cool-down
    assert decide_replicas(3, 0.0, SETTINGS, state, now=10.0) == 2  # one step down
    assert decide_replicas(2, 0.0, SETTINGS, state, now=15.0) == 2  # the next waits a full cool-down
    assert decide_replicas(2, 0.0, SETTINGS, state, now=20.0) == 1
    assert decide_replicas(1, 0.0, SETTINGS, state, now=99.0) == 1  # never below min


def test_the_target_comes_from_the_benchmark_and_the_slo() -> None:
    # 100 req/s at p95 20 ms alone; SLO 100 ms leaves 80 ms: 1 + 100 x 0.08 = 9 requests may wait
    assert target_outstanding(100.0, 20.0, 100.0) == pytest.approx(9.0)
    assert target_outstanding(100.0, 120.0, 100.0) == 1.0  # already past the SLO: one at a time
    chosen = {"bench_throughput_rps": 50.0, "bench_latency_ms_p95": 40.0}
    assert settings_from_plan(chosen, 80.0, max_replicas=3) == AutoscaleSettings(1, 3, 3.0)
    with pytest.raises(ConfigError, match="no benchmark throughput"):
        settings_from_plan({}, 80.0)


@pytest.mark.parametrize(
    "raw",
    [
        {"min_replicas": 3, "max_replicas": 2},
        {"target_outstanding_per_replica": 0},
        {"scale_in_cooldown": 5},  # misspelt
    ],
)
def test_bad_settings_name_the_problem(raw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        AutoscaleSettings.from_spec({"autoscale": raw})


def test_no_autoscale_key_means_off() -> None:
    assert AutoscaleSettings.from_spec({"max_batch_size": 8}) is None
    assert AutoscaleSettings.from_spec({"autoscale": {"max_replicas": 2}}) == AutoscaleSettings(
        max_replicas=2
    )
