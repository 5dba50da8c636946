"""Prefect tasks around the deploy targets (``thrifty.providers``): choose, deploy, delete, rebalance, gc.

A target is a descriptor (``thrifty.targets``) plus, for every target but this machine, the block
that configures it (``"thrifty-aws-target/prod"``); ``build_provider`` turns either into a provider
and a task calls one library function on it. ``deploy_to_target`` registers an ``on_rollback``
hook: inside a Prefect ``transaction()``, a later failure deletes what it deployed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import task
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.transactions import Transaction, get_transaction
from pydantic import BaseModel, Field

from thrifty import runtime, tokens
from thrifty.errors import (
    CapacityError,
    ConfigError,
    CredentialsError,
    NotFoundError,
    QuotaExceededError,
    UnsupportedFeatureError,
)
from thrifty.lifecycle import Lifecycle, ServedAs, record_first_revision, smoke_verifier, state_verifier
from thrifty.policies.rebalance import RebalancePolicy
from thrifty.providers.aws_interruption import EVENT_NAME, InterruptionNotice
from thrifty.providers.base import (
    DeploymentStatus,
    DeploySpec,
    Replica,
    provider_class,
    record_deployment,
    serving_name,
    spec_from_dict,
)
from thrifty.providers.gc import sweep
from thrifty.providers.rebalance import Executor, rebalance_deployment, record_switch
from thrifty.providers.specs import copy_artifacts, deploy_first_available, for_target, with_optimized_graph
from thrifty.settings import get_settings
from thrifty.states import DeploymentState, state_of
from thrifty.targets import (
    TargetDescriptor,
    TargetKind,
    all_targets,
    local_target,
    offer_kind,
    target_for_block,
    targets_for,
)
from thrifty.targets import target as target_named

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


class TargetChoice(BaseModel):
    """Where a deployment goes: a target (by descriptor name) and the block that configures it."""

    provider: str = Field(..., description="the target's name (thrifty.targets)")
    block: str | None = Field(None, description="Prefect block reference; None: the target needs none")
    reason: str = Field("", description="why this target was chosen")

    @property
    def descriptor(self) -> TargetDescriptor:
        return target_named(self.provider)


class Deployed(BaseModel):
    """What the deploy step did: the spec that went out, what the provider reported, what it skipped."""

    spec: DeploySpec
    state: str
    endpoint_url: str | None
    replicas_ready: int
    skipped: list[str] = Field(default_factory=list)
    target: TargetChoice | None = Field(None, description="the target that took it (after any fallback)")


def build_provider(where: str | TargetChoice) -> Any:
    """The provider of a target block ``slug/name``, or of a choice (a target without a block too)."""
    ref = where if isinstance(where, str) else where.block
    if ref is None:
        return provider_class(where.provider)()  # type: ignore[union-attr]
    block: Any = Block.load(ref)
    return block.build_provider()


def choice_for_block(ref: str) -> TargetChoice:
    return TargetChoice(provider=target_for_block(ref).name, block=ref, reason=f"target block {ref}")


def choice_for(target: str, blocks: Mapping[str, str] | None = None) -> TargetChoice:
    """Target ``target`` configured by ``blocks[target]`` if given, else by its default block."""
    block = (blocks or {}).get(target) or target_named(target).default_block
    return TargetChoice(provider=target, block=block, reason=f"target {target}")


def block_saved(ref: str) -> bool:
    try:
        Block.load(ref)
    except (ValueError, KeyError):
        return False
    return True


@task(name="choose-target", cache_policy=NO_CACHE)
def choose_target(chosen: Mapping[str, Any], target: str) -> TargetChoice:
    """Where to deploy a plan: by (cloud, kind) of its chosen offer when ``target`` is ``auto``.

    ``auto`` takes the first target serving the offer's cloud and kind whose default block is
    saved, else this machine; a target name needs its default block saved (``local`` needs none);
    ``slug/name`` is a block reference.
    """
    if "/" in target:
        return _named(target_for_block(target), target)
    if target != "auto":
        descriptor = target_named(target)
        return _named(descriptor, descriptor.default_block)
    cloud, kind = str(chosen.get("provider", "")), offer_kind(str(chosen.get("price_model", "")))
    for descriptor in targets_for(cloud, kind):
        if descriptor.default_block and block_saved(descriptor.default_block):
            return TargetChoice(
                provider=descriptor.name,
                block=descriptor.default_block,
                reason=f"target block {descriptor.default_block} is configured",
            )
    wanted = " or ".join(d.default_block or d.name for d in targets_for(cloud, kind)) or "none exists"
    return TargetChoice(
        provider=local_target().name,
        reason=f"the plan chose {cloud} ({kind.value}), but no target for it is configured "
        f"(block: {wanted}); serving the chosen variant on this machine instead",
    )


def _named(descriptor: TargetDescriptor, block: str | None) -> TargetChoice:
    if block is None:
        return TargetChoice(provider=descriptor.name, reason=f"target={descriptor.name}")
    if not block_saved(block):
        raise ConfigError(
            f"target {descriptor.name!r} needs the Prefect block {block!r}, which is not saved",
            hint="save it (see blocks/targets.py), or run with target=local",
        )
    return TargetChoice(provider=descriptor.name, block=block, reason=f"target block {block} is configured")


def _record(status: DeploymentStatus, spec: DeploySpec, choice: TargetChoice) -> None:
    resources = {"target": choice.block or choice.provider, "ids": [r.id for r in status.resources]}
    record_deployment(runtime.registry(), status, spec, resources | dict(status.details))


class Fallback(BaseModel):
    """Another target to try, with its candidates, when every candidate before it was refused."""

    choice: TargetChoice
    specs: list[DeploySpec]


@task(name="deploy-to-target", cache_policy=NO_CACHE)
def deploy_to_target(
    choice: TargetChoice,
    specs: list[DeploySpec],
    fallbacks: list[Fallback] | None = None,
    verify: str = "smoke",
) -> Deployed:
    """Deploy the first of ``specs`` the target can take (plan order) and record it in the registry.

    A candidate without capacity or quota, or of a kind the target does not run, falls through to
    the next; when the target refuses them all, each of ``fallbacks`` is tried in turn (a serverless
    choice falls back to the plan's next dedicated candidate) and ``skipped`` says why. Inside a
    Prefect ``transaction()``, a later failure (the smoke test) deletes what this created (revision
    1). A deployment that exists is updated blue-green (``thrifty.lifecycle``: the new revision is
    verified with ``verify`` before traffic moves) and a later failure leaves it as it is. No retries: Prefect rolls the transaction back
    on the first failed attempt, so a retry would deploy into a rolled-back one.
    """
    registry = runtime.registry()
    attempts = [Fallback(choice=choice, specs=specs), *(fallbacks or [])]
    existing = registry.find_deployment(specs[0].name) if specs else None
    existed = existing is not None and state_of(existing.state).exists
    if existed:
        _remember(choice, specs[0].name, existed)
        provider = build_provider(choice)
        ready = [_with_token(_for(s, choice), choice, provider) for s in specs]
        return _update(choice, ready, verify)
    skipped: list[str] = []
    for attempt in attempts:
        provider = build_provider(attempt.choice)
        ready = [_with_token(_for(s, attempt.choice), attempt.choice, provider) for s in attempt.specs]
        copied = copy_artifacts(ready[0], provider) if ready else []  # to the target's store, if elsewhere
        try:
            spec, status, passed = deploy_first_available(ready, lambda _spec, p=provider: p)
        except CapacityError as exc:
            if attempt is attempts[-1]:
                raise
            skipped.append(f"target {attempt.choice.provider}: {exc.message} ({exc.hint})")
            continue
        spec = spec.with_changes(secret_bundle=None)  # the key went to the secret store, not to results
        _remember(attempt.choice, spec.name, existed)
        return _deployed(attempt.choice, spec, status, skipped + passed, copied)
    raise CapacityError("no target to deploy to", hint="the plan has no candidates")


def _remember(choice: TargetChoice, name: str, existed: bool) -> None:
    """What the transaction's rollback needs: the target, the name, whether it was there before."""
    transaction = get_transaction()
    if transaction is not None:
        transaction.set("deployed", {"choice": choice.model_dump(), "name": name, "existed": existed})


def _deployed(
    choice: TargetChoice,
    spec: DeploySpec,
    status: DeploymentStatus,
    skipped: list[str],
    copied: list[dict[str, Any]],
) -> Deployed:
    registry = runtime.registry()
    _record(status, spec, choice)
    record_first_revision(registry, spec, choice.provider, choice.block or choice.provider)
    if copied:
        registry.add_event(
            spec.name, "artifact-copied", reason=f"to {copied[0]['to_url']}", details={"copied": copied}
        )
    registry.add_event(
        spec.name,
        "deployed",
        reason=f"{choice.provider} {spec.region} {spec.instance_type}",
        details={"variant_id": spec.variant_id, "artifact_sha256": spec.artifact_sha256},
    )
    return Deployed(
        spec=spec,
        state=status.state,
        endpoint_url=status.endpoint_url,
        replicas_ready=status.replicas_ready,
        skipped=skipped,
        target=choice,
    )


def _update(choice: TargetChoice, specs: list[DeploySpec], verify: str) -> Deployed:
    """A new revision of an existing deployment: the first candidate the target can take."""
    lifecycle = lifecycle_for(verify)
    ref = choice.block or choice.provider
    skipped: list[str] = []
    for spec in specs:
        try:
            lifecycle.update(spec.name, spec, ref, reason=f"deploy-model on {choice.provider}")
        except (CapacityError, QuotaExceededError, UnsupportedFeatureError) as exc:
            skipped.append(f"{spec.region}/{spec.instance_type}/{spec.price_model.value}: {exc.message}")
            continue
        row = runtime.registry().get_deployment(spec.name)
        return Deployed(
            spec=spec,
            state=row.state,
            endpoint_url=row.endpoint_url,
            replicas_ready=row.replicas,
            skipped=skipped,
            target=choice,
        )
    raise CapacityError(
        f"no candidate of the plan could be deployed ({len(specs)} tried)", hint="; ".join(skipped)
    )


def _for(spec: DeploySpec, choice: TargetChoice) -> DeploySpec:
    """``spec`` as the chosen target runs it; a serverless one with its graph optimized once, now."""
    spec = for_target(spec, choice.descriptor)
    if choice.descriptor.kind is not TargetKind.SERVERLESS:
        return spec
    return with_optimized_graph(spec, choice.descriptor, runtime.store())


def _with_token(spec: DeploySpec, choice: TargetChoice, provider: Any) -> DeploySpec:
    """A remote deployment gets its own API token. Where the provider has a secret store, also a
    TLS certificate: its replicas get the token's digest and the key through that store
    (``secret_bundle``, never stored), the registry pins the certificate's fingerprint. Elsewhere
    the replicas get the token's digest only, and serve plain HTTP."""
    if choice.descriptor.kind is TargetKind.LOCAL:
        return spec
    from pydantic import SecretStr

    from thrifty import tls

    home = get_settings().home
    token_sha256 = spec.serving.get("token_sha256") or tokens.issue(home, spec.name)
    notice = tokens.notice_token(tokens.token_for(home, spec.name), spec.name)  # the watcher's credential
    if not getattr(provider, "secret_store", ""):
        return spec.with_changes(
            serving={**spec.serving, "token_sha256": token_sha256, "notice_token": notice}
        )
    cert = tls.issue(home, spec.name)
    serving = {
        **spec.serving,
        "token_sha256": token_sha256,
        "notice_token": notice,
        "tls_cert_sha256": cert.sha256,
        "tls_cert_pem": cert.cert_pem,
    }
    bundle = SecretStr(tls.secret_bundle(cert, str(token_sha256)))
    return spec.with_changes(serving=serving, secret_bundle=bundle)


@deploy_to_target.on_rollback
def _undo_deploy(transaction: Transaction) -> None:
    deployed = transaction.get("deployed")
    if deployed["existed"]:
        return
    build_provider(TargetChoice(**deployed["choice"])).delete(deployed["name"])
    for revision in runtime.registry().list_revisions(deployed["name"]):
        if revision.state == "staged":
            runtime.registry().update_revision(revision.id, state="failed", reason="smoke test failed")
    if runtime.registry().find_deployment(deployed["name"]) is not None:
        runtime.registry().upsert_deployment(
            deployed["name"], state=DeploymentState.DELETED, replicas=0, endpoint_url=None
        )


@task(name="saved-targets", cache_policy=NO_CACHE)
def saved_targets() -> dict[str, str]:
    """The saved default blocks of the targets that rebalance VMs (target name → block reference)."""
    return {
        d.name: d.default_block
        for d in all_targets().values()
        if d.default_block
        and d.kind in (TargetKind.VM, TargetKind.KUBERNETES)
        and block_saved(d.default_block)
    }


@task(name="list-rebalance-candidates", cache_policy=NO_CACHE)
def list_rebalance_candidates(providers: list[str], only: str | None = None) -> list[dict[str, str]]:
    """Live deployments on ``providers`` (or just ``only``): the ones a rebalance pass looks at."""
    return [
        {"name": d.name, "provider": d.provider}
        for d in runtime.registry().list_deployments()
        if d.provider in providers and state_of(d.state).active and only in (None, d.name)
    ]


def _http_health(replica: Replica) -> bool:
    """The replica's OIP readiness. Like a kubelet's or a load balancer's probe it sends no token and
    does not check an HTTPS replica's certificate: nothing secret goes out, only "ready" comes back."""
    import httpx

    if not replica.endpoint_url:
        return False
    try:
        url = f"{replica.endpoint_url}/v2/health/ready"
        return httpx.get(url, timeout=2.0, verify=False).status_code == 200
    except httpx.HTTPError:
        return False


def _switch(name: str, replicas: Any) -> None:
    record_switch(runtime.registry(), name, replicas)


#: seconds a cloud revision keeps running after traffic moved off it, before it is deleted
DRAIN_S = 30.0


def lifecycle_for(verify: str = "smoke") -> Lifecycle:
    """The lifecycle verbs with providers from target blocks; ``verify``: smoke (an inference) or state."""
    return Lifecycle(
        runtime.registry(),
        lambda ref: build_provider(ref) if "/" in ref else build_provider(TargetChoice(provider=ref)),
        smoke_verifier() if verify == "smoke" else state_verifier,
        # the old revision's VMs stay up this long after traffic moved: the front door re-reads the
        # endpoints every second, and requests already sent to the old VMs finish
        drain_s=DRAIN_S,
    )


def _migrate(targets: dict[str, str], health: str) -> Any:
    """Move a deployment to the action's offer as a new revision (never the same name on a target)."""
    lifecycle = lifecycle_for("smoke" if health == "http" else "state")
    return lambda action: lifecycle.migrate(action, targets)


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
    row = runtime.registry().get_deployment(name)
    provider = ServedAs(build_provider(target), name, serving_name(row))  # NAME-rN after an update
    if not hasattr(provider, "replicas"):  # Kubernetes: the cluster replaces pods; re-apply the spec
        status = provider.deploy(spec_from_dict(row.spec))
        return [{"kind": "reconcile", "status": status.state, "usd_saved_per_month": 0.0}]
    executor = Executor(
        provider=provider,  # type: ignore[arg-type]
        health_check=_http_health if health == "http" else (lambda replica: replica.state == "running"),
        switch_traffic=_switch,
        migrate=_migrate(targets or {}, health),
    )
    outcomes = rebalance_deployment(
        executor,
        runtime.registry(),
        name,
        region=row.region,
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
    rows = [d for d in runtime.registry().list_deployments() if d.state != "deleted"]
    live = [(d.provider, n) for d in rows for n in {d.name, serving_name(d)}]  # NAME-rN after an update
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
