"""Flow ``hibernation-sweep`` (every 5 minutes): hibernate idle deployments, pre-warm predicted ones.

For each deployment: the configured policy (block ``thrifty-hibernation-policy``) reads its own
request log and says keep warm, pre-warm or hibernate; the flow wakes or hibernates it through
its target and records the decision and its reason as a deployment event. A serverless deployment
is never hibernated (its platform scales to zero): the flow sets only its warm floor (``floor``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from blocks import load_or_default
from blocks.hibernation import HibernationPolicy
from tasks.hibernation import (
    apply_hibernation,
    decide_hibernation,
    list_sweep_deployments,
    record_hibernation_decision,
)
from tasks.providers import choice_for


class HibernationSweepParams(BaseModel):
    policy_block: str | None = Field(
        "default", description="Name of the saved thrifty-hibernation-policy block; empty: built-in defaults."
    )
    targets: dict[str, str] = Field(
        default_factory=dict,
        description="Target → block, e.g. {'aws': 'thrifty-aws-target/prod'}; a target not named here "
        "uses its default block (this machine needs none).",
    )
    deployment: str | None = Field(None, description="Only this deployment; empty: all of them.")
    dry_run: bool = Field(False, description="Decide and record, but do not hibernate or wake.")


@flow(name="hibernation-sweep", log_prints=True)
def hibernation_sweep(params: HibernationSweepParams | None = None) -> dict[str, Any]:
    """One pass: returns per deployment what was decided, why, and what was done."""
    params = params or HibernationSweepParams()
    policy = load_or_default(HibernationPolicy, params.policy_block)
    results: dict[str, Any] = {}
    for item in list_sweep_deployments(params.deployment):
        row = decide_hibernation(item["name"], policy.config_for(item["name"]).__dict__)
        if row["do"] != "none" and not params.dry_run:
            row["result"] = apply_hibernation(
                choice_for(item["provider"], params.targets), item["name"], row["do"], row.get("warm_floor")
            )
        row["recorded"] = record_hibernation_decision(row)
        print(f"{item['name']}: {row['do']} — {row['reason']}")
        results[item["name"]] = row
    return results
