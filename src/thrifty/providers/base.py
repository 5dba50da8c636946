"""One interface for every deploy target, and the registry of targets by name.

Each target (local, kubernetes, aws, gcp, azure) is one class implementing ``Provider``. What a
target cannot do is data — ``unsupported = {Feature.SPOT: "local machine has no spot market"}`` —
checked in one place (``require``). No ``if provider == "aws"`` outside the provider modules.

Every call is idempotent: ``deploy`` twice with the same spec leaves one deployment; ``delete`` of
something already gone succeeds. The state of each deployment lives in the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from thrifty.errors import ConfigError, UnsupportedFeatureError


class Feature(StrEnum):
    SPOT = "spot"
    GPU = "gpu"
    SCALE_TO_ZERO = "scale_to_zero"
    AUTOSCALE = "autoscale"
    REGIONS = "regions"


class PriceModel(StrEnum):
    ON_DEMAND = "on_demand"
    SPOT = "spot"
    SERVERLESS = "serverless"


@dataclass(frozen=True)
class DeploySpec:
    """What to deploy where; built from a plan's chosen candidate (or by hand for local serving)."""

    name: str
    model_name: str
    variant_id: int
    artifact_sha256: str
    region: str = "local"
    instance_type: str = "local"
    price_model: PriceModel = PriceModel.ON_DEMAND
    replicas: int = 1
    on_demand_floor: int = 0
    plan_id: int | None = None
    serving: Mapping[str, Any] = field(default_factory=dict)


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
    """A DeploySpec as plain JSON types (what the registry stores and Prefect tasks pass)."""
    data = asdict(spec)
    data["price_model"] = spec.price_model.value
    data["serving"] = dict(spec.serving)
    return data


def spec_from_dict(data: Mapping[str, Any]) -> DeploySpec:
    fields = dict(data)
    fields["price_model"] = PriceModel(fields.get("price_model", "on_demand"))
    return DeploySpec(**fields)


def record_deployment(
    registry: Any, status: DeploymentStatus, spec: DeploySpec, resources: Mapping[str, Any]
) -> None:
    """Write what a provider reported for ``spec`` into the registry's deployment row."""
    registry.upsert_deployment(
        spec.name,
        provider=status.provider,
        region=spec.region,
        variant_id=spec.variant_id,
        plan_id=spec.plan_id,
        state=status.state,
        replicas=status.replicas_ready,
        endpoint_url=status.endpoint_url,
        spec=spec_to_dict(spec),
        resources=dict(resources),
    )


def slot_name(name: str, slot: int, suffix: str = "") -> str:
    """The VM name of one replica slot of deployment ``name`` (``thrifty-NAME-SLOT[-SUFFIX]``)."""
    return f"thrifty-{name}-{slot}" + (f"-{suffix}" if suffix else "")


def slot_market(spec: DeploySpec, slot: int) -> PriceModel:
    """Slots below the on-demand floor are on-demand; the rest follow the spec's price model."""
    spot = spec.price_model is PriceModel.SPOT and slot >= spec.on_demand_floor
    return PriceModel.SPOT if spot else PriceModel.ON_DEMAND


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


#: provider name → "module:Class"; the one place that knows every target
PROVIDERS: dict[str, str] = {
    "local": "thrifty.providers.local:LocalProvider",
    "aws": "thrifty.providers.aws:AwsProvider",
    "gcp": "thrifty.providers.gcp:GcpProvider",
    "azure": "thrifty.providers.azure:AzureProvider",
    "kubernetes": "thrifty.providers.kubernetes:KubernetesProvider",
}


def provider_class(name: str) -> type[Provider]:
    """The class registered as ``name``; a wrong name fails with the list of valid names."""
    try:
        target = PROVIDERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown provider {name!r}", hint=f"use one of: {', '.join(sorted(PROVIDERS))}"
        ) from None
    module_name, _, class_name = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def require(provider: type[Provider] | Provider, feature: Feature) -> None:
    """Raise ``UnsupportedFeatureError`` with the provider's own reason when it lacks ``feature``."""
    reason = provider.unsupported.get(feature)
    if reason is not None:
        raise UnsupportedFeatureError(
            f"provider {provider.name!r} does not support {feature.value}: {reason}",
            hint="choose another target or drop the option",
        )
