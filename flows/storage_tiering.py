"""Flow ``storage-tiering`` (daily): keep deployed blobs hot, move idle ones colder, collect
unreferenced ones after their grace period. A dry run unless ``apply`` is set; either way the
result lists every move and delete with its reason, bytes and $/month saved.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from tasks.storage import apply_storage_plan, plan_storage_lifecycle


class StorageTieringParams(BaseModel):
    cloud: str = Field("aws", description="Whose storage classes price the moves: aws, gcp or azure.")
    warm_after_days: float = Field(30.0, ge=0, description="Days unused before a blob moves to warm.")
    cold_after_days: float = Field(90.0, ge=0, description="Days unused before a blob moves to cold.")
    gc_grace_days: float = Field(7.0, ge=0, description="Days an unreferenced blob is kept before deletion.")
    horizon_days: float = Field(180.0, gt=0, description="Days a move must pay back its one-time charges in.")
    rollback_variants: int = Field(2, ge=0, description="Earlier variants per deployment kept hot.")
    apply: bool = Field(False, description="Execute the plan (off: dry run, nothing changes).")


@flow(name="storage-tiering", log_prints=True)
def storage_tiering(params: StorageTieringParams | None = None) -> dict[str, Any]:
    """Returns the plan and, when applied, what was done."""
    params = params or StorageTieringParams()
    plan = plan_storage_lifecycle(params.model_dump(exclude={"apply"}))
    print(
        f"{plan['objects_scanned']} blobs: {len(plan['actions'])} actions, "
        f"{plan['bytes_moved']} B to move, {plan['bytes_deleted']} B to delete, "
        f"${plan['usd_saved_per_month']:.4f}/month saved"
    )
    result: dict[str, Any] = {"plan": plan, "applied": None}
    if params.apply and plan["actions"]:
        result["applied"] = apply_storage_plan(plan)
        print(f"applied: {result['applied']}")
    return result
