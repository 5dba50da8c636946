"""Prefect tasks around the deploy targets (``thrifty.providers``): deploy, delete, rebalance, gc.

Targets are named by block reference (``"thrifty-aws-target/prod"``); a task loads the block,
builds the provider and calls one library function. ``deploy_to_provider`` registers an
``on_rollback`` hook: inside a Prefect ``transaction()``, a later failure deletes what it deployed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import task
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.transactions import Transaction, get_transaction

from thrifty import runtime
from thrifty.errors import (
    CapacityError,
    ConfigError,
    CredentialsError,
    NotFoundError,
    QuotaExceededError,
    UnsupportedFeatureError,
)
from thrifty.providers.aws_interruption import EVENT_NAME, InterruptionNotice
from thrifty.providers.base import (
    DeploymentStatus,
    DeploySpec,
    record_deployment,
    spec_from_dict,
)
from thrifty.providers.gc import sweep
from thrifty.providers.rebalance import Action, Executor, RebalancePolicy, Replica, rebalance_deployment

#: errors a retry cannot fix
_FINAL = (
    CapacityError,
    QuotaExceededError,
    CredentialsError,
    ConfigError,
    UnsupportedFeatureError,
    NotFoundError,
)


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass: a thrifty error that names a permanent cause is not retried."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, _FINAL)


def build_provider(target: str) -> Any:
    """The provider of the target block ``slug/name``."""
    block: Any = Block.load(target)
    return block.build_provider()


def _record(status: DeploymentStatus, spec: DeploySpec, target: str) -> None:
    resources = {"target": target, "ids": [r.id for r in status.resources], **dict(status.details)}
    record_deployment(runtime.registry(), status, spec, resources)


@task(
    name="deploy-to-provider",
    retries=3,
    retry_delay_seconds=[2, 5, 15],
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def deploy_to_provider(target: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Deploy ``spec`` on the target block ``target`` and record the deployment in the registry."""
    deploy_spec = spec_from_dict(spec)
    transaction = get_transaction()
    if transaction is not None:
        transaction.set("deployed", {"target": target, "name": deploy_spec.name})
    status = build_provider(target).deploy(deploy_spec)
    _record(status, deploy_spec, target)
    runtime.registry().add_event(
        deploy_spec.name, "deployed", reason=f"{status.provider} {deploy_spec.region}"
    )
    return {
        "state": status.state,
        "endpoint_url": status.endpoint_url,
        "replicas_ready": status.replicas_ready,
    }


@deploy_to_provider.on_rollback
def _undo_deploy(transaction: Transaction) -> None:
    deployed = transaction.get("deployed")
    build_provider(deployed["target"]).delete(deployed["name"])
    runtime.registry().upsert_deployment(deployed["name"], state="deleted", replicas=0, endpoint_url=None)


@task(
    name="delete-from-provider",
    retries=3,
    retry_delay_seconds=[2, 5, 15],
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def delete_from_provider(target: str, name: str) -> None:
    """Delete the deployment everywhere on the target (idempotent) and mark it deleted."""
    build_provider(target).delete(name)
    if runtime.registry().find_deployment(name) is not None:
        runtime.registry().upsert_deployment(name, state="deleted", replicas=0, endpoint_url=None)
        runtime.registry().add_event(name, "deleted", reason=f"deleted from {target}")


#: the block each provider's target is saved under by default (``deploy-model`` uses the same names)
DEFAULT_TARGETS = {p: f"thrifty-{p}-target/default" for p in ("aws", "gcp", "azure", "kubernetes")}


@task(name="saved-targets", cache_policy=NO_CACHE)
def saved_targets() -> dict[str, str]:
    """The default target blocks that are saved (provider → block reference)."""
    found = {}
    for provider, ref in DEFAULT_TARGETS.items():
        try:
            Block.load(ref)
        except (ValueError, KeyError):
            continue
        found[provider] = ref
    return found


@task(name="list-rebalance-candidates", cache_policy=NO_CACHE)
def list_rebalance_candidates(providers: list[str], only: str | None = None) -> list[dict[str, str]]:
    """Live deployments on ``providers`` (or just ``only``): the ones a rebalance pass looks at."""
    return [
        {"name": d.name, "provider": d.provider}
        for d in runtime.registry().list_deployments()
        if d.provider in providers and d.state not in ("deleted", "hibernated") and only in (None, d.name)
    ]


def _http_health(replica: Replica) -> bool:
    import httpx

    if not replica.endpoint_url:
        return False
    try:
        return httpx.get(f"{replica.endpoint_url}/v2/health/ready", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _switch(name: str, replicas: Any) -> None:
    endpoints = [r.endpoint_url for r in replicas if r.endpoint_url]
    deployment = runtime.registry().get_deployment(name)
    resources = {**deployment.resources, "endpoints": endpoints, "ids": [r.id for r in replicas]}
    runtime.registry().upsert_deployment(
        name, endpoint_url=endpoints[0] if endpoints else None, resources=resources, replicas=len(endpoints)
    )


def _migrate(targets: dict[str, str], source: str) -> Any:
    def migrate(action: Action) -> None:
        assert action.target is not None
        if action.target.provider not in targets:
            raise ConfigError(
                f"no target block for {action.target.provider}", hint="add it to the flow's targets"
            )
        old = spec_from_dict(runtime.registry().get_deployment(action.deployment).spec)
        new = replace(
            old,
            region=action.target.region,
            instance_type=action.target.instance_type,
            price_model=action.target.price_model,
        )
        status = build_provider(targets[action.target.provider]).deploy(new)
        _record(status, new, targets[action.target.provider])
        build_provider(source).delete(old.name)

    return migrate


@task(
    name="rebalance-spot",
    retries=3,
    retry_delay_seconds=[2, 5, 15],
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def rebalance_spot(
    target: str,
    name: str,
    noticed_ids: list[str],
    policy: dict[str, Any],
    health: str = "http",
    targets: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One rebalance pass over deployment ``name`` (replace, floor, return to spot, migrate)."""
    provider = build_provider(target)
    if not hasattr(provider, "replicas"):  # Kubernetes: the cluster replaces pods; re-apply the spec
        status = provider.deploy(spec_from_dict(runtime.registry().get_deployment(name).spec))
        return [{"kind": "reconcile", "status": status.state, "usd_saved_per_month": 0.0}]
    executor = Executor(
        provider=provider,
        health_check=_http_health if health == "http" else (lambda replica: replica.state == "running"),
        switch_traffic=_switch,
        migrate=_migrate(targets or {}, target),
    )
    region = runtime.registry().get_deployment(name).region
    outcomes = rebalance_deployment(
        executor,
        runtime.registry(),
        name,
        region=region,
        noticed_ids=noticed_ids,
        policy=RebalancePolicy(**policy),
    )
    return [
        {
            "kind": o.action.kind,
            "status": o.status,
            "reason": o.action.reason,
            "detail": o.detail,
            "usd_saved_per_month": o.action.usd_saved_per_month if o.status == "done" else 0.0,
        }
        for o in outcomes
    ]


@task(
    name="gc-orphans",
    retries=3,
    retry_delay_seconds=[2, 5, 15],
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def gc_orphans(targets: list[str], grace_s: float, dry_run: bool = False) -> list[dict[str, Any]]:
    """Delete (or list, with ``dry_run``) tagged resources no live deployment owns."""
    live = [(d.provider, d.name) for d in runtime.registry().list_deployments() if d.state != "deleted"]
    orphans = sweep([build_provider(t) for t in targets], live, grace_s=grace_s, dry_run=dry_run)
    return [
        {
            "provider": o.resource.provider,
            "kind": o.resource.kind,
            "id": o.resource.id,
            "deployment": o.resource.deployment_name,
            "reason": o.reason,
            "deleted": not dry_run,
        }
        for o in orphans
    ]


def interruption_event(notice: InterruptionNotice) -> dict[str, Any]:
    """The Prefect event for an interruption notice (what ``emit_interruption_event`` sends)."""
    return {
        "event": EVENT_NAME,
        "resource": {
            "prefect.resource.id": f"thrifty.deployment.{notice.deployment}",
            "thrifty.deployment": notice.deployment,
            "thrifty.cloud": notice.cloud,
            "thrifty.instance-id": notice.instance_id,
        },
        "payload": notice.payload(),
    }


def emit_interruption_event(notice: InterruptionNotice) -> Any:
    """Send ``thrifty.spot.interruption`` (the trigger of the spot-rebalance deployment)."""
    return emit_event(**interruption_event(notice))
