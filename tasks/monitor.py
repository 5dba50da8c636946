"""Prefect tasks of the ``monitor`` flow: roll up fleet metrics (and the spend ledger's hours), detect
anomalies on the rollups, announce each new one as a ``thrifty.anomaly.<kind>`` event, and read the
month's spend. Each calls one function of ``thrifty.monitor`` / ``thrifty.read``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from thrifty import read, runtime
from thrifty.monitor.rollup import roll_up
from thrifty.monitor.watch import new_alerts
from thrifty.registry import fleet
from thrifty.states import state_of

EVENT_PREFIX = "thrifty.anomaly."


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


@task(name="roll-up-metrics", cache_policy=NO_CACHE)
def roll_up_metrics(now: datetime | None = None) -> dict[str, Any]:
    """One-minute and one-hour buckets of every deployment, ledger hours with them; old ones pruned."""
    report = roll_up(runtime.registry(), _now(now))
    return {"written": report.written, "pruned_rows": report.pruned_rows}


@task(name="list-monitored-deployments", cache_policy=NO_CACHE)
def list_monitored_deployments() -> list[str]:
    """Deployments that still exist (running or hibernated): the ones worth watching."""
    return [d.name for d in runtime.registry().list_deployments() if state_of(d.state).exists]


@task(name="detect-anomalies", cache_policy=NO_CACHE)
def detect_anomalies(name: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """New alerts on ``name``'s cost per request, p95 latency, error rate and traffic (stored)."""
    found: list[dict[str, Any]] = new_alerts(runtime.registry(), name, _now(now))
    return found


@task(name="announce-anomaly", cache_policy=NO_CACHE)
def announce_anomaly(alert: dict[str, Any]) -> str | None:
    """Emit ``thrifty.anomaly.<kind>`` with baseline, observed, deviation and the suggested action;
    record it on the deployment's history too."""
    name = alert["deployment"]
    payload = {
        key: alert[key]
        for key in ("kind", "observed", "baseline", "deviation_rel", "unit", "action", "message")
    } | {"at": alert["at"].isoformat()}
    event = emit_event(
        event=EVENT_PREFIX + alert["kind"],
        resource={
            "prefect.resource.id": f"thrifty.deployment.{name}",
            "prefect.resource.name": name,
            "thrifty.deployment": name,
        },
        payload=payload,
    )
    registry = runtime.registry()
    registry.add_event(name, "anomaly", alert["message"], details=payload)
    if event is None:
        return None
    fleet.set_alert_event(registry, int(alert["id"]), str(event.id))
    return str(event.id)


@task(name="read-spend", cache_policy=NO_CACHE)
def read_spend(now: datetime | None = None) -> dict[str, Any]:
    """Month-to-date spend and forecast per deployment, from the ledger just updated."""
    answer = read.costs(runtime.registry(), now=_now(now))
    return {
        "total_usd": answer.total_usd,
        "forecast_month_usd": answer.forecast_month_usd,
        "deployments": {
            v.deployment: {
                "total_usd": v.total_usd,
                "forecast_month_usd": v.forecast_month_usd,
                "usd_per_million_requests_reservation": v.usd_per_million_requests_reservation,
                "usd_per_million_requests_usage": v.usd_per_million_requests_usage,
            }
            for v in answer.deployments
        },
    }
