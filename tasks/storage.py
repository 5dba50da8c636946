"""Prefect tasks of the ``storage-tiering`` flow: plan the storage lifecycle, then apply it.

Both are one library call (``thrifty.artifacts.lifecycle``); the plan crosses the task boundary as
its dict, so the flow's result shows every move and delete with its reason, bytes and $/month.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from thrifty import runtime
from thrifty.artifacts.lifecycle import LifecycleRules, StoragePlan, apply_plan, plan_for_store


@task(name="plan-storage-lifecycle", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def plan_storage_lifecycle(rules: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The dry-run plan for the configured artifact store against the registry (lists the store)."""
    plan = plan_for_store(
        runtime.store(), runtime.registry(), LifecycleRules(**rules), now or datetime.now(UTC)
    )
    data: dict[str, Any] = plan.to_dict()
    return data


@task(name="apply-storage-plan", cache_policy=NO_CACHE)
def apply_storage_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """Execute a plan from ``plan_storage_lifecycle``; failed actions are listed, the rest go on."""
    applied: dict[str, Any] = apply_plan(
        runtime.store(), StoragePlan.from_dict(plan), runtime.registry()
    ).to_dict()
    return applied
