"""Flows ``update-deployment``, ``rollback-deployment``, ``delete-deployment`` and
``migrate-deployment``: the lifecycle verbs of a running deployment (``thrifty.lifecycle``).

An update or rollback is a new revision started beside the live one, verified (``verify``: a real
inference, or the provider's state for endpoints this machine cannot reach), then traffic moves
and the old revision drains; on failure the live revision keeps serving. ``migrate-deployment``
is one rebalance pass over one deployment (``spot-rebalance`` with ``deployment`` set): it moves
only when the newer plan beats the current one by the threshold, with hysteresis and a minimum
dwell. The ``thrifty.plan.cheaper`` automation that ``make server`` registers runs it.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from pydantic import BaseModel, Field

from tasks.lifecycle import delete_deployment_task, rollback_deployment_task, update_deployment_task
from thrifty.errors import ProviderError

Verify = Literal["smoke", "state"]
VERIFY_HELP = "How the new revision proves itself: smoke (a real inference) or state (provider reports)."


class UpdateParams(BaseModel):
    name: str = Field(..., description="The deployment to update.")
    variant_id: int | None = Field(None, description="Serve this variant; empty: keep the current one.")
    plan_id: int | None = Field(
        None, description="Move to this plan's chosen offer; empty: stay where it is."
    )
    target: str | None = Field(None, description="Target block (slug/name) or name; empty: the current one.")
    verify: Verify = Field("smoke", description=VERIFY_HELP)


class RollbackParams(BaseModel):
    name: str = Field(..., description="The deployment to roll back.")
    to: int | None = Field(None, description="Revision number; empty: the previous verified revision.")
    verify: Verify = Field("smoke", description=VERIFY_HELP)


class DeleteParams(BaseModel):
    name: str = Field(..., description="The deployment to delete (every revision, on its target).")


class MigrateParams(BaseModel):
    name: str = Field(..., description="The deployment a cheaper plan was found for.")
    migrate_threshold_fraction: float = Field(
        0.20, ge=0.0, lt=1.0, description="Move only when the newer plan is cheaper by more than this."
    )
    hysteresis_fraction: float = Field(
        0.10, ge=0.0, description="Extra saving needed to move back to where the deployment came from."
    )
    min_dwell_s: float = Field(6 * 3600.0, ge=0.0, description="Seconds to stay put after a migration.")
    health_check: Literal["http", "state"] = Field(
        "http", description="How a new replica proves it is ready."
    )


def _finish(outcome: dict[str, Any]) -> dict[str, Any]:
    print(f"{outcome['verb']} {outcome['name']}: {outcome['status']} {outcome['detail']}".rstrip())
    if outcome["status"] == "failed":
        raise ProviderError(
            f"{outcome['verb']} of {outcome['name']!r} failed: {outcome['detail']}",
            hint="the live revision keeps serving; see `thrifty revisions NAME`",
        )
    return outcome


@flow(name="update-deployment", log_prints=True)
def update_deployment(params: UpdateParams) -> dict[str, Any]:
    """A new revision of a deployment, blue-green; returns the outcome (unsupported targets say so)."""
    return _finish(
        update_deployment_task(params.name, params.variant_id, params.plan_id, params.target, params.verify)
    )


@flow(name="rollback-deployment", log_prints=True)
def rollback_deployment(params: RollbackParams) -> dict[str, Any]:
    """Make an earlier verified revision live again; returns the outcome with its time in seconds."""
    return _finish(rollback_deployment_task(params.name, params.to, params.verify))


@flow(name="delete-deployment", log_prints=True)
def delete_deployment(params: DeleteParams) -> dict[str, Any]:
    """Delete a deployment on its target; its revisions and events stay in the registry."""
    return _finish(delete_deployment_task(params.name))


@flow(name="migrate-deployment", log_prints=True)
def migrate_deployment(params: MigrateParams) -> dict[str, Any]:
    """One guarded rebalance pass over one deployment (threshold, hysteresis, minimum dwell)."""
    from flows.spot_rebalance import SpotRebalanceParams, spot_rebalance

    rebalance = SpotRebalanceParams(
        deployment=params.name,
        migrate_threshold_fraction=params.migrate_threshold_fraction,
        hysteresis_fraction=params.hysteresis_fraction,
        min_dwell_s=params.min_dwell_s,
        health_check=params.health_check,
        gc=False,
    )
    return spot_rebalance(rebalance)
