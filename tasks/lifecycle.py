"""Prefect tasks around the lifecycle verbs (``thrifty.lifecycle``): update, rollback, delete.

Each calls one ``Lifecycle`` verb with providers built from the deployment's target block and
returns the outcome as a plain row. A verb the target does not support, or that failed, comes
back as data (``status``: unsupported / failed, ``detail``: why), never as a traceback.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.providers import lifecycle_for
from thrifty import runtime
from thrifty.errors import ConfigError, ThriftyError
from thrifty.lifecycle.core import Outcome, outcome_of_error, target_ref
from thrifty.providers.base import DeploySpec, spec_from_dict
from thrifty.providers.specs import candidates_for, spec_from_candidate
from thrifty.targets import target as target_named
from thrifty.targets import target_for_block


def _row(outcome: Outcome) -> dict[str, Any]:
    row: dict[str, Any] = outcome.row()
    return row


@task(name="update-deployment", cache_policy=NO_CACHE)
def update_deployment_task(
    name: str, variant_id: int | None, plan_id: int | None, target: str | None, verify: str
) -> dict[str, Any]:
    """A new revision of ``name``: another variant and/or a plan's chosen offer, blue-green."""
    try:
        row = runtime.registry().get_deployment(name)
        ref = target or target_ref(row)
        spec = _next_spec(name, row.spec or {}, variant_id, plan_id, ref)
        return _row(lifecycle_for(verify).update(name, spec, ref))
    except ThriftyError as exc:
        return _row(outcome_of_error(name, "update", exc))


def _next_spec(
    name: str, current: dict[str, Any], variant_id: int | None, plan_id: int | None, ref: str
) -> DeploySpec:
    registry = runtime.registry()
    spec = spec_from_dict({**current, "name": name})
    if plan_id is not None:
        plan = registry.get_plan(plan_id)
        descriptor = target_for_block(ref) if "/" in ref else target_named(ref)
        candidates = candidates_for(plan.record or {"chosen": plan.chosen}, descriptor)
        if not candidates:
            raise ConfigError(f"plan {plan_id} has no candidate on {ref}", hint="pass another target")
        spec = spec_from_candidate(
            candidates[0], name=name, model_name=spec.model_name, variant_id=spec.variant_id,
            artifact_sha256=spec.artifact_sha256, plan_id=plan_id,
        ).with_changes(serving=spec.serving)  # fmt: skip
    if variant_id is not None:
        variant = registry.get_variant(variant_id)
        spec = spec.with_changes(variant_id=variant.id, artifact_sha256=variant.artifact.sha256)
    return spec


@task(name="rollback-deployment", cache_policy=NO_CACHE)
def rollback_deployment_task(name: str, to: int | None, verify: str) -> dict[str, Any]:
    """Make an earlier verified revision of ``name`` live again (the previous one by default)."""
    try:
        return _row(lifecycle_for(verify).rollback(name, to))
    except ThriftyError as exc:
        return _row(outcome_of_error(name, "rollback", exc))


@task(name="delete-deployment", cache_policy=NO_CACHE)
def delete_deployment_task(name: str) -> dict[str, Any]:
    """Delete ``name`` on its target (every revision); the registry keeps its history."""
    try:
        return _row(lifecycle_for("state").delete(name))
    except ThriftyError as exc:
        return _row(outcome_of_error(name, "delete", exc))
