"""Flow ``price-compare``: (optionally) refresh prices, plan a model, publish the top offers."""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from tasks.plan import plan_placement, publish_plan_artifacts
from tasks.prices import fetch_prices


class PriceCompareParams(BaseModel):
    model: str = Field(..., description="Registered model name to plan.")
    p95_ms: float = Field(50.0, gt=0, description="p95 latency target in milliseconds.")
    rps: float = Field(20.0, gt=0, description="Target traffic in requests per second.")
    providers: list[str] | None = Field(
        None, description="Allowed providers (aws, gcp, azure); all if empty."
    )
    spot_ok: bool = Field(False, description="Allow spot capacity (interruption risk is priced in).")
    min_fidelity: float | None = Field(None, description="Minimum fidelity score of a variant.")
    refresh: bool = Field(False, description="Refresh prices before planning.")
    snapshot: str | None = Field(
        None, description="Refresh from this snapshot folder instead of the live APIs."
    )
    recorded: bool = Field(False, description="Plan with recorded MiniLM numbers (no benchmarks needed).")
    top: int = Field(10, ge=1, le=100, description="Offers in the table artifact.")


@flow(name="price-compare", log_prints=True)
def price_compare(params: PriceCompareParams) -> dict[str, Any]:
    """Plan one model across the clouds; returns the plan id, the chosen offer and the baseline."""
    if params.refresh or params.snapshot:
        report = fetch_prices(params.providers, params.snapshot)
        print(f"prices appended: {report['written']}; failed: {report['failed'] or 'none'}")
    slo = {
        "latency_ms_p95": params.p95_ms,
        "providers": params.providers,
        "spot_ok": params.spot_ok,
        "min_fidelity": params.min_fidelity,
    }
    planned = plan_placement(params.model, slo, {"rps": params.rps}, recorded=params.recorded)
    artifacts = publish_plan_artifacts(planned["plan_id"], planned["record"], params.top)
    chosen, baseline = planned["record"]["chosen"], planned["record"]["baseline"]
    print(
        f"plan {planned['plan_id']}: {chosen['variant']} on {chosen['provider']} {chosen['instance_type']} "
        f"{chosen['region']} ({chosen['option']}) ${chosen['usd_per_month']:,.2f}/month"
    )
    return {"plan_id": planned["plan_id"], "chosen": chosen, "baseline": baseline, "artifacts": artifacts}
