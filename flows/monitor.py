"""Flow ``monitor`` (every 2 minutes): roll up fleet metrics, update the spend ledger, detect anomalies
in cost per request, p95 latency, error rate and traffic, and announce each new one as a
``thrifty.anomaly.<kind>`` Prefect event (``make server`` registers the automation that routes them).

Alerts are stored in the registry (``thrifty alerts``, ``read.alerts``) and on the deployment's
history. One deployment whose detection fails is reported; the others go on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from tasks.monitor import (
    announce_anomaly,
    detect_anomalies,
    list_monitored_deployments,
    read_spend,
    roll_up_metrics,
)


class MonitorParams(BaseModel):
    deployment: str | None = Field(None, description="Only detect on this deployment; empty: all of them.")
    now: datetime | None = Field(
        None, description="Run as of this UTC time (replays and tests); empty: the current time."
    )


@flow(name="monitor", log_prints=True)
def monitor(params: MonitorParams | None = None) -> dict[str, Any]:
    """One pass: buckets written, new anomalies (with their event ids), and the month's spend."""
    params = params or MonitorParams()
    rollup = roll_up_metrics(params.now)
    names = [params.deployment] if params.deployment else list_monitored_deployments()
    anomalies: dict[str, Any] = {}
    for name in names:
        state = detect_anomalies(name, params.now, return_state=True)
        if not state.is_completed():
            anomalies[name] = {"error": str(state.message or state.name)}
            continue
        found = state.result()
        for alert in found:
            alert["event_id"] = announce_anomaly(alert)
            print(f"anomaly: {alert['message']}")
        anomalies[name] = found
    spend = read_spend(params.now)
    print(f"spend this month: ${spend['total_usd']:,.4f}; forecast ${spend['forecast_month_usd']:,.2f}")
    return {"rollup": rollup, "anomalies": anomalies, "spend": spend}
