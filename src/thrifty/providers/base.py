"""One interface for every deploy target: the Provider protocol, the spec it deploys, what it reports.

Each target (described in ``thrifty.targets``) is one class implementing ``Provider``. What a
target cannot do is data — ``unsupported = {Feature.SPOT: "local machine has no spot market"}`` —
checked in one place (``require``). No ``if provider == "aws"`` outside the provider modules.

Every call is idempotent: ``deploy`` twice with the same spec leaves one deployment; ``delete`` of
something already gone succeeds. The state of each deployment lives in the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from thrifty.errors import UnsupportedFeatureError
from thrifty.targets import TargetKind, offer_kind, target

if TYPE_CHECKING:
    from thrifty.registry import Registry


class Feature(StrEnum):
    SPOT = "spot"
    GPU = "gpu"
    SCALE_TO_ZERO = "scale_to_zero"
    AUTOSCALE = "autoscale"
    REGIONS = "regions"
    REVISIONS = "revisions"


class PriceModel(StrEnum):
    ON_DEMAND = "on_demand"
    SPOT = "spot"
    SERVERLESS = "serverless"


class DeploySpec(BaseModel):
    """What to deploy where; built from a plan's candidate (``providers.specs``) or for one variant.

    A frozen pydantic model: it crosses Prefect task boundaries and is stored in the registry as
    JSON (``spec_to_dict`` / ``spec_from_dict``); keys the registry adds beside it are ignored.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    model_name: str
    variant_id: int
    artifact_sha256: str
    region: str = "local"
    instance_type: str = "local"
    price_model: PriceModel = PriceModel.ON_DEMAND
    replicas: int = Field(1, ge=0)
    on_demand_floor: int = Field(0, ge=0)
    plan_id: int | None = None
    serving: dict[str, Any] = Field(default_factory=dict)
    #: the deployment's secret bundle (``thrifty.tls.secret_bundle``: TLS key, certificate, token
    #: digest) on its way to the cloud's secret store; in memory only, never in a dump or the registry
    secret_bundle: SecretStr | None = Field(None, exclude=True, repr=False)

    @property
    def kind(self) -> TargetKind:
        """The kind of target this spec needs: serverless offers need a serverless target."""
        return offer_kind(self.price_model.value)

    @property
    def served_name(self) -> str:
        """The name in the model's URLs: the deployment's, also for a revision staged as NAME-rN."""
        return str(self.serving.get("model_name") or self.name)

    def with_changes(self, **changes: Any) -> DeploySpec:
        return self.model_validate(self.model_dump() | {"secret_bundle": self.secret_bundle} | changes)


@dataclass(frozen=True)
class ManagedResource:
    """Something a provider created, found again through its ownership tags/labels."""

    provider: str
    kind: str
    id: str
    region: str
    deployment_name: str
    created_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    provider: str
    state: str  # pending | running | hibernated | degraded | deleted | failed
    replicas_desired: int
    replicas_ready: int
    endpoint_url: str | None = None
    resources: tuple[ManagedResource, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


def spec_to_dict(spec: DeploySpec) -> dict[str, Any]:
    """A DeploySpec as plain JSON types (what the registry stores)."""
    return spec.model_dump(mode="json")


def spec_from_dict(data: Mapping[str, Any]) -> DeploySpec:
    return DeploySpec.model_validate(dict(data))


def record_deployment(
    registry: Registry,
    status: DeploymentStatus,
    spec: DeploySpec,
    resources: Mapping[str, Any],
    *,
    name: str | None = None,
) -> None:
    """Write what a provider reported for ``spec`` into the registry's deployment row.

    The row is ``name`` (default ``spec.name``; a revision staged as ``NAME-rN`` is recorded under
    ``NAME``). Keys a provider stored beside the spec (the local target's resolved files) are kept.
    """
    name = name or spec.name
    existing = registry.find_deployment(name)
    extras = {}
    if existing is not None and existing.provider == status.provider:
        extras = {k: v for k, v in (existing.spec or {}).items() if k not in DeploySpec.model_fields}
    registry.upsert_deployment(
        name,
        provider=status.provider,
        region=spec.region,
        variant_id=spec.variant_id or None,
        plan_id=spec.plan_id,
        state=status.state,
        replicas=status.replicas_ready,
        endpoint_url=status.endpoint_url,
        spec=spec_to_dict(spec) | extras,
        resources=dict(resources),
    )


def serving_name(row: Any) -> str:
    """The name a deployment row's target knows it by (``NAME``, or ``NAME-rN`` after an update)."""
    return str((row.spec or {}).get("name") or row.name)


def slot_name(name: str, slot: int, suffix: str = "") -> str:
    """The VM name of one replica slot of deployment ``name`` (``thrifty-NAME-SLOT[-SUFFIX]``)."""
    return f"thrifty-{name}-{slot}" + (f"-{suffix}" if suffix else "")


def slot_market(spec: DeploySpec, slot: int) -> PriceModel:
    """Slots below the on-demand floor are on-demand; the rest follow the spec's price model."""
    spot = spec.price_model is PriceModel.SPOT and slot >= spec.on_demand_floor
    return PriceModel.SPOT if spot else PriceModel.ON_DEMAND


#: cloud instance states in which a replica counts (serving or booting)
REPLICA_LIVE_STATES = ("pending", "running")


@dataclass(frozen=True)
class Replica:
    """One copy of a deployment on a VM provider, as the provider reports it."""

    id: str
    slot: int
    market: PriceModel
    state: str
    fallback: bool = False
    retired: bool = False
    endpoint_url: str | None = None
    launched_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.state in REPLICA_LIVE_STATES and not self.retired


class SpotCapable(Protocol):
    """What a VM provider offers the rebalance executor (AWS, GCP and Azure implement it)."""

    name: ClassVar[str]

    def replicas(self, name: str) -> list[Replica]: ...

    def desired_markets_of(self, name: str) -> list[PriceModel]: ...

    def launch_replica(
        self, name: str, slot: int, market: PriceModel, *, replaces: str = "", allow_fallback: bool = True
    ) -> Replica: ...

    def retire_replica(self, name: str, replica_id: str) -> None: ...


@runtime_checkable
class Provider(Protocol):
    name: ClassVar[str]
    unsupported: ClassVar[Mapping[Feature, str]]

    def deploy(self, spec: DeploySpec) -> DeploymentStatus: ...

    def scale(self, name: str, replicas: int) -> DeploymentStatus: ...

    def hibernate(self, name: str) -> DeploymentStatus: ...

    def wake(self, name: str) -> DeploymentStatus: ...

    def status(self, name: str) -> DeploymentStatus: ...

    def delete(self, name: str) -> None: ...

    def list_managed(self) -> list[ManagedResource]: ...


def provider_class(name: str) -> type[Provider]:
    """The class of target ``name`` (from its descriptor); a wrong name lists the valid ones."""
    module_name, _, class_name = target(name).provider.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def require(provider: type[Provider] | Provider, need: Feature | DeploySpec) -> None:
    """Raise ``UnsupportedFeatureError`` when the target lacks a feature or cannot run a spec.

    For a spec: its kind must be the target's (a serverless offer needs a serverless target, an
    instance offer a VM, cluster or local target) and spot needs ``Feature.SPOT``. One message,
    one place: every provider's ``deploy`` calls this first.
    """
    if isinstance(need, DeploySpec):
        _require_kind(provider.name, need)
        if need.price_model is PriceModel.SPOT:
            require(provider, Feature.SPOT)
        return
    reason = provider.unsupported.get(need)
    if reason is not None:
        raise UnsupportedFeatureError(
            f"provider {provider.name!r} does not support {need.value}: {reason}",
            hint="choose another target or drop the option",
        )


def _require_kind(name: str, spec: DeploySpec) -> None:
    kind = target(name).kind
    if (kind is TargetKind.SERVERLESS) == (spec.kind is TargetKind.SERVERLESS):
        return
    offer = f"{spec.instance_type} ({spec.price_model.value}, {spec.region})"
    raise UnsupportedFeatureError(
        f"target {name!r} ({kind.value}) cannot run {offer}: it needs a {spec.kind.value} target",
        hint="deploy the plan's next candidate, or save a target block of that kind for the cloud",
    )
