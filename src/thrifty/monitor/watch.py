"""The monitor's detector step: a deployment's one-minute rollups → ``anomaly.detect`` → new alerts.

The detector (``thrifty.monitor.anomaly``) is used through its public API as it is: the last 26 h of
minutes (24 h for "same hour yesterday", two more for the rolling baseline) become a gap-free
``MinuteMetrics`` (an idle minute: no requests, no latency, no spend). A scheduled run keeps only
alerts in the last ``RECENT_MIN`` minutes that are not within the cooldown of one already stored (of the
same episode: a new anomaly after the last one ended may alert within it), so a re-run or an
overlapping schedule announces nothing twice.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from thrifty.monitor.anomaly import DAY_MIN, Alert, DetectorConfig, MinuteMetrics, detect
from thrifty.monitor.rollup import MINUTE_S, floor_time
from thrifty.registry import fleet

#: alerts older than this at run time were a previous run's business (the schedule is 1–5 min)
RECENT_MIN = 15


def minute_metrics(registry: Any, name: str, now: datetime, config: DetectorConfig) -> MinuteMetrics:
    """The last ``DAY_MIN + baseline_min + lag_min + 60`` complete minutes of ``name``, gaps filled;
    with the replicas of each minute, so cost is judged per replica-minute."""
    minutes = DAY_MIN + config.baseline_min + config.lag_min + 60
    end = floor_time(now, MINUTE_S)
    start = end - timedelta(minutes=minutes)
    requests, errors, usd, replicas = (np.zeros(minutes) for _ in range(4))
    p95 = np.full(minutes, np.nan)
    for row in fleet.rollups(registry, name, MINUTE_S, start, end):
        i = int((row.bucket_start - start).total_seconds() // 60)
        requests[i], errors[i], usd[i], replicas[i] = row.requests, row.errors, row.usd, row.replica_s / 60
        p95[i] = np.nan if row.latency_ms_p95 is None else row.latency_ms_p95
    return MinuteMetrics(name, start, requests, errors, p95, usd, replicas)


def _row(alert: Alert) -> dict[str, Any]:
    deviation = alert.deviation_rel if math.isfinite(alert.deviation_rel) else None
    return {
        "deployment": alert.deployment,
        "kind": alert.kind,
        "at": alert.at,
        "observed": alert.observed,
        "baseline": alert.baseline,
        "deviation_rel": deviation,
        "unit": alert.unit,
        "action": alert.action,
        "message": alert.message(),
    }


def _cooling(registry: Any, alert: Alert, config: DetectorConfig) -> bool:
    """Whether ``alert`` is within the cooldown of the last stored alert of its kind and belongs to
    the same episode (its run began before that episode could have ended, ``rearm_min``)."""
    last = fleet.last_alert_at(registry, alert.deployment, alert.kind)
    if last is None:
        return False
    began = alert.at - timedelta(minutes=alert.minute - alert.since_minute)
    same_episode = began <= last + timedelta(minutes=config.rearm_min)
    return last < alert.at < last + timedelta(minutes=config.cooldown_min) and same_episode


def new_alerts(
    registry: Any, name: str, now: datetime, config: DetectorConfig | None = None
) -> list[dict[str, Any]]:
    """Detect on ``name``'s recent minutes and store the alerts not seen before; returns them as rows."""
    config = config or DetectorConfig()
    found = detect(minute_metrics(registry, name, now, config), config)
    recent = now - timedelta(minutes=RECENT_MIN)
    fresh = [a for a in found if a.at >= recent and not _cooling(registry, a, config)]
    stored = fleet.add_alerts(registry, [_row(a) for a in fresh])
    return [
        {c.name: getattr(s, c.name) for c in s.__table__.columns}  # type: ignore[attr-defined]
        for s in stored
    ]
