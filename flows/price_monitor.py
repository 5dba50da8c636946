"""Flow ``price-monitor`` (every 6 hours): refresh prices from every configured source, then re-plan
each live deployment and emit ``thrifty.plan.cheaper`` when another offer beats it by more than
the threshold (block ``thrifty-price-monitor``).

Each source is its own task run: one failing (after its retries) is reported and the others go
on; a failed source appends nothing, so its previous prices stay in force.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from blocks import load_or_default
from blocks.price_monitor import PriceMonitorSettings
from tasks.price_monitor import announce_cheaper_plan, list_planned_deployments, replan_deployment
from tasks.prices import fetch_prices


class PriceMonitorParams(BaseModel):
    settings_block: str | None = Field(
        "default", description="Name of the saved thrifty-price-monitor block; empty: built-in defaults."
    )
    refresh: bool = Field(True, description="Refresh prices first (off: only re-plan at the stored prices).")


def _refresh(settings: PriceMonitorSettings) -> dict[str, Any]:
    sources: list[tuple[str, list[str] | None, str | None]] = [(p, [p], None) for p in settings.providers]
    if settings.snapshot:
        sources.append((f"snapshot:{settings.snapshot}", None, settings.snapshot))
    written: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for label, providers, snapshot in sources:
        state = fetch_prices(providers, snapshot, return_state=True)
        if state.is_completed():
            report = state.result()
            written.update(report["written"])
            failed.update(report["failed"])
        else:
            failed[label] = str(state.message or state.name)
    return {"written": written, "failed": failed}


@flow(name="price-monitor", log_prints=True)
def price_monitor(params: PriceMonitorParams | None = None) -> dict[str, Any]:
    """Returns what each source wrote or why it failed, and every deployment's re-plan."""
    params = params or PriceMonitorParams()
    settings = load_or_default(PriceMonitorSettings, params.settings_block)
    prices = _refresh(settings) if params.refresh else {"written": {}, "failed": {}}
    print(f"prices appended: {prices['written'] or 'none'}; failed: {prices['failed'] or 'none'}")
    replans: dict[str, Any] = {}
    for name in list_planned_deployments():
        state = replan_deployment(
            name, settings.threshold_fraction, settings.min_saving_usd_per_month, return_state=True
        )
        if not state.is_completed():  # one deployment that cannot be re-planned never stops the others
            replans[name] = {"deployment": name, "error": str(state.message or state.name)}
            continue
        result = state.result()
        if result["cheaper"] is not None:
            result["event_id"] = announce_cheaper_plan(result["cheaper"])
            print(f"{name}: cheaper offer saves ${result['cheaper']['saving_usd_per_month']:,.2f}/month")
        replans[name] = result
    return {"prices": prices, "deployments": replans}
