"""Flow ``spot-rebalance``: keep spot deployments whole and cheap.

Every 15 minutes and on each ``thrifty.spot.interruption`` event: for each live deployment on the
configured targets, one rebalance pass (replace interrupted capacity, restore the on-demand floor,
move on-demand fallbacks back to spot, migrate when another region/cloud is cheaper beyond the
threshold, with hysteresis), then the orphan sweep. Each action is a deployment event with its
reason and the dollars saved per month.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from pydantic import BaseModel, Field

from tasks.providers import gc_orphans, list_rebalance_candidates, rebalance_spot, saved_targets


class SpotRebalanceParams(BaseModel):
    targets: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Provider name → target block reference, e.g. {'aws': 'thrifty-aws-target/prod'}; "
            "empty: every saved thrifty-<provider>-target/default block."
        ),
    )
    deployment: str | None = Field(
        None, description="Only this deployment (the interruption trigger sets it); empty: all of them."
    )
    instance_ids: list[str] = Field(
        default_factory=list, description="Replicas that received an interruption notice (from the event)."
    )
    migrate_threshold_fraction: float = Field(
        0.20, ge=0.0, lt=1.0, description="Migrate when another offer is cheaper by more than this fraction."
    )
    hysteresis_fraction: float = Field(
        0.10, ge=0.0, description="Extra saving needed to move back to where the deployment came from."
    )
    min_dwell_s: float = Field(6 * 3600.0, ge=0.0, description="Seconds to stay put after a migration.")
    health_check: Literal["http", "state"] = Field(
        "http", description="How a new replica proves it is ready: HTTP /v2/health/ready or the VM state."
    )
    gc: bool = Field(True, description="Sweep orphaned resources after the rebalance.")
    gc_grace_s: float = Field(900.0, ge=0.0, description="Orphans younger than this are left alone.")


@flow(name="spot-rebalance", log_prints=True)
def spot_rebalance(params: SpotRebalanceParams | None = None) -> dict[str, Any]:
    """One pass over every live deployment on the targets; returns the actions and the orphans."""
    params = params or SpotRebalanceParams()
    if not params.targets:
        params = params.model_copy(update={"targets": saved_targets()})
    policy = {
        "migrate_threshold_fraction": params.migrate_threshold_fraction,
        "hysteresis_fraction": params.hysteresis_fraction,
        "min_dwell_s": params.min_dwell_s,
    }
    actions: dict[str, list[dict[str, Any]]] = {}
    for item in list_rebalance_candidates(list(params.targets), params.deployment):
        actions[item["name"]] = rebalance_spot(
            params.targets[item["provider"]],
            item["name"],
            params.instance_ids,
            policy,
            params.health_check,
            params.targets,
        )
    orphans = gc_orphans(list(params.targets.values()), params.gc_grace_s) if params.gc else []
    saved = sum(a["usd_saved_per_month"] for done in actions.values() for a in done)
    print(f"{sum(map(len, actions.values()))} actions, {len(orphans)} orphans, {saved:,.2f} USD/month saved")
    return {"actions": actions, "orphans": orphans, "usd_saved_per_month": saved}
