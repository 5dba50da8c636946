"""The monitor flow on real registry rows and a simulated clock: 26 h of steady traffic to the fleet's
deployment, then a latency regression. The quiet run finds nothing; the run after the regression
rolls it up, records one latency alert, announces it as a ``thrifty.anomaly.latency.*`` event and on
the deployment's history; running again announces nothing twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from flows.monitor import MonitorParams, monitor
from tests.unit.api.test_webhooks import SECRET, Receiver, wait_for_events
from tests.unit.monitor.fleet import NAME, T0, make_fleet
from thrifty import read, webhooks

QUIET = T0 + timedelta(hours=26)
REGRESSION = QUIET + timedelta(minutes=2)
NOW = QUIET + timedelta(minutes=10, seconds=30)


def traffic(start: datetime, minutes: int, latency_ms: float, seed: int) -> list[dict[str, Any]]:
    """Ten requests a minute with ±10 % latency noise."""
    rng = np.random.default_rng(seed)
    return [
        {
            "model_name": NAME,
            "at": start + timedelta(minutes=m, seconds=6 * i),
            "latency_ms": float(rng.normal(latency_ms, latency_ms / 10)),
            "cold": False,
            "status_code": 200,
        }
        for m in range(minutes)
        for i in range(10)
    ]


def test_monitor_flags_a_latency_regression_once(thrifty_home: Path) -> None:
    from thrifty import runtime

    registry = runtime.registry()
    receiver = Receiver()
    webhooks.subscribe(registry, receiver.url, ["anomaly"], SECRET)
    make_fleet(registry)
    registry.log_requests_bulk(traffic(T0, 26 * 60 + 2, 50.0, seed=1))
    quiet = monitor(MonitorParams(now=QUIET + timedelta(minutes=1)))
    assert quiet["anomalies"][NAME] == []
    assert quiet["rollup"]["written"][NAME]["minutes"] == 26 * 60  # every minute since T0 (a replica ran)
    assert quiet["spend"]["deployments"][NAME]["total_usd"] > 0

    registry.log_requests_bulk(traffic(REGRESSION, 8, 200.0, seed=2))
    found = monitor(MonitorParams(now=NOW))["anomalies"][NAME]
    assert [a["kind"].split(".")[0] for a in found] == ["latency"]
    alert = found[0]
    assert alert["observed"] > 150 and 40 < alert["baseline"] < 60
    assert alert["event_id"] and "roll back" in alert["action"]
    assert [a.kind for a in read.alerts(registry, NAME)] == [alert["kind"]]
    assert [e.kind for e in read.events(registry, NAME)].count("anomaly") == 1
    (hook,) = wait_for_events(receiver, 1)  # the announcement reached the webhook subscribers, signed
    assert hook["type"] == "anomaly" and hook["data"]["deployment"] == NAME
    assert (
        hook["data"]["details"]["kind"] == alert["kind"]
        and hook["data"]["details"]["action"] == alert["action"]
    )

    again = monitor(MonitorParams(now=NOW + timedelta(minutes=1)))
    assert again["anomalies"][NAME] == []
    assert len(read.alerts(registry, NAME)) == 1
    assert len(wait_for_events(receiver, 2, timeout_s=1.0)) == 1  # announced once
    receiver.close()
