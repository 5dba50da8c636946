"""The monitor's dedup against stored alerts: one announcement per episode, a new episode announced."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from thrifty.monitor.anomaly import Alert, DetectorConfig
from thrifty.monitor.watch import _cooling, _row
from thrifty.registry import fleet

START = datetime(2026, 2, 2, tzinfo=UTC)


def alert(minute: int, since_minute: int) -> Alert:
    return Alert(
        deployment="m",
        series="traffic",
        detector="jump",
        at=START + timedelta(minutes=minute),
        minute=minute,
        observed=300.0,
        baseline=100.0,
        deviation_rel=2.0,
        robust_z=20.0,
        unit="requests/min",
        action="confirm the traffic is wanted",
        since_minute=since_minute,
    )


@pytest.mark.parametrize(
    ("later", "cooling"),
    [
        # the same episode goes on (its run began 3 min after the stored alert): still cooling
        (alert(120, 103), True),
        # a new episode: its run began 40 min after the stored alert, when the first had ended
        (alert(143, 140), False),
        # past the hour's cooldown: announced whatever the episode
        (alert(170, 100), False),
    ],
)
def test_a_new_episode_is_announced_within_the_cooldown(registry: Any, later: Alert, cooling: bool) -> None:
    config = DetectorConfig()
    first = alert(100, 97)
    fleet.add_alerts(registry, [_row(first)])
    assert _cooling(registry, later, config) is cooling
    assert _cooling(registry, replace(later, deployment="other"), config) is False  # per deployment
