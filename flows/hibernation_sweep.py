"""Flow ``hibernation-sweep`` (every 5 minutes): hibernate idle deployments, pre-warm predicted ones.

For each deployment: the configured policy (block ``thrifty-hibernation-policy``) reads its own
request log and says keep warm, pre-warm or hibernate; the flow wakes or hibernates it through
its target and records the decision and its reason as a deployment event.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from blocks.hibernation import HibernationPolicy
from tasks.hibernation import (
    apply_hibernation,
    decide_hibernation,
    list_sweep_deployments,
    record_hibernation_decision,
)
from tasks.serving import hibernate_deployment, wake_deployment


class HibernationSweepParams(BaseModel):
    policy_block: str | None = Field(
        "default", description="Name of the saved thrifty-hibernation-policy block; empty: built-in defaults."
    )
    targets: dict[str, str] = Field(
        default_factory=dict,
        description="Provider → target block for non-local deployments, e.g. {'aws': 'thrifty-aws-target/prod'}; "
        "default thrifty-<provider>-target/default. Local deployments use the local provider.",
    )
    deployment: str | None = Field(None, description="Only this deployment; empty: all of them.")
    dry_run: bool = Field(False, description="Decide and record, but do not hibernate or wake.")


def _policy(name: str | None) -> HibernationPolicy:
    if not name:
        return HibernationPolicy()
    try:
        loaded: Any = HibernationPolicy.load(name)
    except ValueError:
        return HibernationPolicy()  # no block saved yet: the defaults (the flow still runs)
    return loaded  # type: ignore[no-any-return]


def _act(item: dict[str, str], do: str, targets: dict[str, str]) -> dict[str, Any]:
    if item["provider"] == "local" and "local" not in targets:
        return hibernate_deployment(item["name"]) if do == "hibernate" else wake_deployment(item["name"])
    target = targets.get(item["provider"], f"thrifty-{item['provider']}-target/default")
    return apply_hibernation(target, item["name"], do)


@flow(name="hibernation-sweep", log_prints=True)
def hibernation_sweep(params: HibernationSweepParams | None = None) -> dict[str, Any]:
    """One pass: returns per deployment what was decided, why, and what was done."""
    params = params or HibernationSweepParams()
    policy = _policy(params.policy_block)
    results: dict[str, Any] = {}
    for item in list_sweep_deployments(params.deployment):
        row = decide_hibernation(item["name"], policy.config_for(item["name"]).__dict__)
        if row["do"] != "none" and not params.dry_run:
            row["result"] = _act(item, row["do"], params.targets)
        row["recorded"] = record_hibernation_decision(row)
        print(f"{item['name']}: {row['do']} — {row['reason']}")
        results[item["name"]] = row
    return results
