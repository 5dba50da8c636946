"""Blue-green updates, rollback, delete and migration, on any target, recorded as revisions.

    update(NAME, spec, target)
      1. revision N is recorded (staged) and deployed *beside* the live one, as ``NAME-rN``
      2. verified: a real inference through its own endpoint (``smoke_verifier``)
      3. traffic moves: a target that routes itself (the local gateway: ``promote``) swaps in place,
         replicas of the new spec first; elsewhere the registry's live endpoint/replica set of
         ``NAME`` becomes revision N's
      4. the previous revision drains (``drain_s``) and is deleted on its target
    A failure in 1–3 deletes only what revision N started; the live revision keeps serving.

Staging under ``NAME-rN`` means an update never reuses the live revision's name on a target, so
a same-target move (another region, another machine type) cannot delete what it just made, and a
cloud that redeploys by filling missing slots still starts every new replica from the new spec.
Rollback is an update to an earlier verified revision's spec; migration is an update whose spec
and target are another region's or cloud's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from thrifty.errors import (
    ConfigError,
    NotFoundError,
    ProviderError,
    ServingError,
    ThriftyError,
    UnsupportedFeatureError,
)
from thrifty.providers.base import (
    DeploymentStatus,
    DeploySpec,
    Feature,
    Provider,
    record_deployment,
    require,
    serving_name,
    spec_from_dict,
    spec_to_dict,
)
from thrifty.states import DeploymentState, state_of

if TYPE_CHECKING:
    from thrifty.policies.rebalance import Action
    from thrifty.registry import Registry
    from thrifty.registry.models import Deployment, Revision

#: revision states: staged → live → retired (→ deleted); staged → failed
LIVE, STAGED, RETIRED, FAILED, DELETED = "live", "staged", "retired", "failed", "deleted"


class Verify(Protocol):
    """Check a staged revision (its spec, what its provider reported); a one-line detail, or raise."""

    def __call__(self, spec: DeploySpec, status: DeploymentStatus) -> str: ...


@dataclass(frozen=True)
class Outcome:
    """What one lifecycle verb did (what the CLI prints and the flows return)."""

    name: str
    verb: str
    status: str  # done | failed | unsupported
    revision: int | None = None
    previous: int | None = None
    detail: str = ""
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        return dict(vars(self))


def capabilities(provider: Provider | type[Provider]) -> dict[str, str | None]:
    """Each lifecycle verb → None where the target supports it, else the reason (data, not a crash)."""
    reason = provider.unsupported.get(Feature.REVISIONS)
    return {"update": reason, "rollback": reason, "delete": None}


def verbs_of(row: Deployment) -> dict[str, str | None]:
    """The lifecycle verbs of a deployment's target (``capabilities`` read from its class)."""
    from thrifty.providers.base import provider_class

    return capabilities(provider_class(row.provider))


def target_ref(row: Deployment) -> str:
    """The block (``slug/name``) or target name a deployment row was deployed through."""
    return str((row.resources or {}).get("target") or row.provider)


def revision_rows(registry: Registry, name: str) -> list[dict[str, Any]]:
    """The revisions of ``name`` as plain rows, oldest first (what `thrifty revisions` prints)."""
    return [
        {
            "revision": r.number,
            "state": r.state,
            "provider": r.provider,
            "target": r.target,
            "serving_name": r.serving_name,
            "variant_id": r.variant_id,
            "plan_id": r.plan_id,
            "region": (r.spec or {}).get("region"),
            "instance_type": (r.spec or {}).get("instance_type"),
            "image_digest": r.image_digest,
            "reason": r.reason,
            "created_at": r.created_at.isoformat(),
        }
        for r in registry.list_revisions(name)
    ]


def record_first_revision(
    registry: Registry, spec: DeploySpec, provider: str, target: str, *, state: str = STAGED
) -> Revision:
    """The revision of a deploy that creates ``spec.name`` (the deploy-model flow's first deploy)."""
    return _add_revision(registry, spec.name, spec, provider, target, spec.name, state, "first deploy")


def _add_revision(
    registry: Registry,
    name: str,
    spec: DeploySpec,
    provider: str,
    target: str,
    serving: str,
    state: str,
    reason: str,
) -> Revision:
    return registry.add_revision(
        name,
        provider=provider,
        target=target,
        serving_name=serving,
        variant_id=spec.variant_id or None,
        plan_id=spec.plan_id,
        spec=spec_to_dict(spec.with_changes(name=name)),
        image_digest=str(spec.serving.get("image") or ""),
        state=state,
        reason=reason,
    )


@dataclass
class Lifecycle:
    """Carries out lifecycle verbs; ``provider_for`` builds a target's provider from its reference."""

    registry: Registry
    provider_for: Callable[[str], Provider]
    verify: Verify
    drain_s: float = 0.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    # -- update (and what rollback and migration are made of) -----------------------------------
    def update(
        self, name: str, spec: DeploySpec, target: str, *, verb: str = "update", reason: str = ""
    ) -> Outcome:
        """Deploy ``spec`` as the next revision of ``name`` on ``target``, blue-green (see module)."""
        started = time.perf_counter()
        live = self._live_row(name)
        if verb == "update" and same_spec(live, spec) and target_ref(live) == target:
            self._reconverge(live, target)
            return Outcome(name, verb, "unchanged", detail="the live revision already runs this spec")
        provider = self.provider_for(target)
        require(provider, Feature.REVISIONS)
        require(provider, spec)
        in_place = self._in_place(live, provider)
        previous = self._live_revision(name, live)
        revision = self._stage_revision(name, spec, provider, target, reason or verb, in_place)
        staged = _staged_spec(name, spec, revision.number, in_place)
        detail = self._start_and_verify(name, revision, staged, provider)
        self._move_traffic(name, revision, staged, provider, target)
        self._retire(name, live, previous, revision.number, in_place)
        seconds = time.perf_counter() - started
        self.registry.add_event(name, "revision_live", f"r{revision.number} ({reason or verb}): {detail}")
        return Outcome(name, verb, "done", revision.number, _number(previous), detail, seconds)

    def _reconverge(self, live: Deployment, target: str) -> None:
        """An unchanged local deployment is brought back to what its row says (the gateway restarted
        if a killed run took it down): deploying the same spec to the gateway is idempotent."""
        provider = self.provider_for(target)
        if routes_itself(provider):
            provider.deploy(spec_from_dict(live.spec or {"name": live.name}))

    def _in_place(self, row: Deployment, provider: Provider) -> bool:
        """True where the target's own router swaps revisions (the same local gateway)."""
        if not routes_itself(self.provider_for(target_ref(row))):
            return False
        if routes_itself(provider) and row.provider == provider.name:
            return True
        raise UnsupportedFeatureError(
            f"deployment {row.name!r} is served by the {row.provider} target's own router; "
            f"moving it to {provider.name} is not supported",
            hint="deploy it to the new target under another name, then `thrifty delete` this one",
        )

    def _live_row(self, name: str) -> Deployment:
        row = self.registry.get_deployment(name)
        if not state_of(row.state).exists:
            raise ConfigError(
                f"deployment {name!r} is {row.state}: there is nothing live to update",
                hint=f"deploy it again (`thrifty deploy … --name {name}`)",
            )
        return row

    def _live_revision(self, name: str, row: Deployment) -> Revision | None:
        """The live revision; a deployment made before revisions existed gets one recorded now."""
        found = [r for r in self.registry.list_revisions(name) if r.state == LIVE]
        if found:
            return found[-1]
        spec = spec_from_dict({**(row.spec or {}), "name": name})
        serving = serving_name(row)
        return _add_revision(
            self.registry, name, spec, row.provider, target_ref(row), serving, LIVE, "adopted"
        )

    def _stage_revision(
        self, name: str, spec: DeploySpec, provider: Provider, target: str, reason: str, in_place: bool
    ) -> Revision:
        revision = _add_revision(self.registry, name, spec, provider.name, target, "", STAGED, reason)
        serving = name if in_place else f"{name}-r{revision.number}"
        return self.registry.update_revision(revision.id, serving_name=serving)

    def _start_and_verify(self, name: str, revision: Revision, staged: DeploySpec, provider: Provider) -> str:
        """Start the staged revision beside the live one and verify it; on failure remove only it."""
        try:
            status = provider.deploy(staged)
            if not status.endpoint_url:
                raise ProviderError(
                    f"revision r{revision.number} of {name!r} reports no endpoint ({status.state})",
                    hint="see the target's console; the live revision keeps serving",
                )
            return self.verify(staged, status)
        except ThriftyError as exc:
            self._discard(provider, staged.name)
            self.registry.update_revision(
                revision.id, state=FAILED, reason=f"{revision.reason}: {exc.message}"
            )
            self.registry.add_event(
                name, "revision_failed", f"r{revision.number}: {exc.message}; the live revision keeps serving"
            )
            raise

    def _discard(self, provider: Provider, staged_name: str) -> None:
        try:
            provider.delete(staged_name)
        except ThriftyError as exc:  # recorded; the orphan sweep (gc) finds what is left by its tags
            self.registry.add_event(staged_name.rsplit("-r", 1)[0], "revision_cleanup_failed", exc.message)

    def _move_traffic(
        self, name: str, revision: Revision, staged: DeploySpec, provider: Provider, target: str
    ) -> None:
        """Point ``name``'s traffic at the verified revision (in place where the target routes)."""
        promote = getattr(provider, "promote", None)
        if promote is not None:
            promote(staged.with_changes(name=name), staged.name)
            self.registry.update_revision(revision.id, state=LIVE)
            return
        status: DeploymentStatus = provider.status(staged.name)
        resources = {"target": target, "ids": [r.id for r in status.resources], "revision": revision.number}
        record_deployment(self.registry, status, staged, resources | dict(status.details), name=name)
        self.registry.update_revision(revision.id, state=LIVE)

    def _retire(
        self, name: str, row: Deployment, previous: Revision | None, number: int, in_place: bool
    ) -> None:
        """Drain, then delete the previous revision (the target's router already did, in place)."""
        if previous is not None:
            self.registry.update_revision(previous.id, state=RETIRED)
        if in_place:
            return
        old_name = serving_name(row)
        self.sleep(self.drain_s)
        try:
            self.provider_for(target_ref(row)).delete(old_name)
        except ThriftyError as exc:
            self.registry.add_event(name, "revision_cleanup_failed", f"{old_name}: {exc.message}")
            return
        self.registry.add_event(name, "revision_retired", f"{old_name} drained and deleted (r{number} live)")

    def migrate(self, action: Action, targets: Mapping[str, str]) -> Outcome:
        """Carry out a rebalance ``migrate`` action: the offer's region/cloud as a new revision.

        ``targets`` maps a cloud to its saved target block; a cloud without one is a ConfigError
        (the rebalance executor records it as a failed action and the pass goes on).
        """
        offer = action.target
        if offer is None:
            raise ConfigError(f"migration of {action.deployment!r} names no target offer")
        ref = targets.get(offer.provider)
        if ref is None:
            raise ConfigError(
                f"no saved target block for {offer.provider}: {action.deployment!r} was not moved",
                hint=f"save a {offer.provider} target block (blocks/targets.py) and pass it in `targets`",
            )
        row = self.registry.get_deployment(action.deployment)
        spec = spec_from_dict({**(row.spec or {}), "name": action.deployment}).with_changes(
            region=offer.region, instance_type=offer.instance_type, price_model=offer.price_model
        )
        return self.update(action.deployment, spec, ref, verb="migrate", reason=action.reason)

    # -- rollback, delete -------------------------------------------------------------------------
    def rollback(self, name: str, to: int | None = None) -> Outcome:
        """Make an earlier verified revision live again (a new revision with its spec)."""
        revisions = self.registry.list_revisions(name)
        chosen = _rollback_target(name, revisions, to)
        spec = spec_from_dict({**chosen.spec, "name": name})
        target = chosen.target or chosen.provider
        return self.update(name, spec, target, verb="rollback", reason=f"rollback to r{chosen.number}")

    def delete(self, name: str) -> Outcome:
        """Delete every revision of ``name`` on its target; the registry keeps the history."""
        row = self.registry.get_deployment(name)
        provider = self.provider_for(target_ref(row))
        for revision in self.registry.list_revisions(name):
            if revision.state in (LIVE, STAGED) and revision.serving_name not in ("", serving_name(row)):
                self._discard(self.provider_for(revision.target or revision.provider), revision.serving_name)
            if revision.state != FAILED:
                self.registry.update_revision(revision.id, state=DELETED)
        provider.delete(serving_name(row))
        if self.registry.find_deployment(name) is not None:
            self.registry.upsert_deployment(
                name, state=DeploymentState.DELETED, replicas=0, endpoint_url=None
            )
            self.registry.add_event(name, "deleted", f"deleted on {target_ref(row)}")
        return Outcome(name, "delete", "done", detail=f"{serving_name(row)} deleted on {target_ref(row)}")


def same_spec(row: Deployment, spec: DeploySpec) -> bool:
    """True when the row's live revision runs ``spec``: its staged name, URL name and the plan that
    chose it aside (a re-plan that lands on the same offer changes nothing that runs)."""

    def plain(data: dict[str, Any]) -> dict[str, Any]:
        serving = {k: v for k, v in (data.get("serving") or {}).items() if k != "model_name"}
        return {**data, "name": "", "plan_id": None, "serving": serving}

    live = spec_to_dict(spec_from_dict(row.spec or {"name": row.name}))
    return plain(live) == plain(spec_to_dict(spec))


def routes_itself(provider: Provider) -> bool:
    """A target whose own router swaps revisions in place (the local gateway): it has ``promote``."""
    return callable(getattr(provider, "promote", None))


def _staged_spec(name: str, spec: DeploySpec, number: int, in_place: bool) -> DeploySpec:
    """Revision ``number`` as the target starts it beside the live one: ``NAME-rN``, serving as NAME.

    A target that routes itself serves the staged copy under its own name (verified there, then
    swapped into ``NAME``); elsewhere the replicas answer ``/v2/models/NAME`` from the start.
    """
    staged = spec.with_changes(name=f"{name}-r{number}")
    if in_place:
        return staged
    return staged.with_changes(serving={**spec.serving, "model_name": name})


def _rollback_target(name: str, revisions: list[Revision], to: int | None) -> Revision:
    live = next((r.number for r in reversed(revisions) if r.state == LIVE), None)
    if to is None:
        earlier = [r for r in revisions if r.state == RETIRED and (live is None or r.number < live)]
        if not earlier:
            raise NotFoundError(
                f"deployment {name!r} has no earlier verified revision to roll back to",
                hint=f"see `thrifty revisions {name}`",
            )
        return earlier[-1]
    chosen = next((r for r in revisions if r.number == to), None)
    if chosen is None or chosen.state not in (RETIRED, DELETED):
        state = "does not exist" if chosen is None else f"is {chosen.state}"
        raise ConfigError(
            f"revision r{to} of {name!r} {state}: only an earlier verified revision can be rolled back to",
            hint=f"see `thrifty revisions {name}` (states retired or deleted)",
        )
    return chosen


def _number(revision: Revision | None) -> int | None:
    return None if revision is None else revision.number


def smoke_verifier(min_cosine: float = 0.99, ready_deadline_s: float = 60.0) -> Verify:
    """A ``Verify`` that sends the smoke inference (``thrifty.verify``) with the deployment's token and
    compares the answer with the model's fp32 original (or, for a plain file, with that file)."""

    def verify(spec: DeploySpec, status: DeploymentStatus) -> str:
        from thrifty.verify import model_url, smoke_test

        reference, tokenizer = _reference_files(spec)
        result = smoke_test(
            f"{model_url(status.endpoint_url or '', spec.served_name)}/infer",
            reference,
            tokenizer,
            min_cosine=min_cosine,
            token=_token(spec.served_name),
            ready_deadline_s=ready_deadline_s,
        )
        if not result.ok:
            raise ServingError(
                f"smoke test of {spec.name} failed: {result.detail}",
                hint="the new revision does not answer like the original; the live revision keeps serving",
            )
        return f"smoke test passed: {result.detail}"

    return verify


def _reference_files(spec: DeploySpec) -> tuple[Any, Any]:
    from thrifty import runtime
    from thrifty.providers.specs import spec_for_variant
    from thrifty.serving.resolve import resolve_files
    from thrifty.settings import get_settings

    registry, cache = runtime.registry(), get_settings().home / "cache"
    reference = spec
    if spec.variant_id:
        version_id = registry.get_variant(spec.variant_id).model_version_id
        original = next((v for v in registry.list_variants(version_id) if v.technique == "export"), None)
        if original is not None:
            reference = spec_for_variant(registry, original.id, name=f"{spec.name}-reference")
    files = resolve_files(reference, registry, runtime.store(), cache)
    return files.model_path, files.tokenizer_path


def _token(name: str) -> str | None:
    from thrifty import tokens
    from thrifty.settings import get_settings

    settings = get_settings()
    try:
        return tokens.token_for(settings.home, name)
    except NotFoundError:  # a local deployment: the gateway's tokens, if any
        return settings.api_tokens[0].get_secret_value() if settings.api_tokens else None


def outcome_of_error(name: str, verb: str, exc: ThriftyError) -> Outcome:
    """A verb that could not run, as data (an unsupported target is not a crash)."""
    status = "unsupported" if isinstance(exc, UnsupportedFeatureError) else "failed"
    return Outcome(name, verb, status, detail=exc.message)


class ServedAs:
    """A provider seen through a deployment's name: a call naming ``name`` goes to ``serving``.

    After an update the target knows the live revision as ``NAME-rN``; the rebalance executor and
    its decisions keep using ``NAME`` (the registry's), and this maps it at the one boundary.
    """

    def __init__(self, provider: Any, name: str, serving: str) -> None:
        self._provider, self._name, self._serving = provider, name, serving

    def __getattr__(self, attribute: str) -> Any:
        found = getattr(self._provider, attribute)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            mapped = [self._serving if arg == self._name else arg for arg in args]
            return found(*mapped, **kwargs)

        return call


def state_verifier(spec: DeploySpec, status: DeploymentStatus) -> str:
    """A ``Verify`` by what the staged revision's provider reported (the flows' ``verify="state"``):
    running, every desired replica ready. No request reaches the model."""
    detail = (
        f"{status.provider} reports {status.state}, {status.replicas_ready}/{status.replicas_desired} ready"
    )
    if status.state != "running" or status.replicas_ready < max(1, status.replicas_desired):
        raise ProviderError(f"state check of {spec.name} failed: {detail}", hint="see the target's console")
    return f"{detail}; no inference sent"
