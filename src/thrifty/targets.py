"""Deploy targets: one descriptor per target, and the one list every layer reads.

A *target* is where a deployment runs: this machine, VMs on a cloud, a Kubernetes cluster, or a
serverless platform. Each is described once, here, by a ``TargetDescriptor``:

    name                   "aws" — what the registry, the CLI and the flows call it
    kind                   local · vm · kubernetes · serverless
    clouds                 the clouds whose offers it can run ("kubernetes" runs on any)
    provider               "module:Class" implementing ``thrifty.providers.base.Provider``
    block_slug             the Prefect block type that configures it (None: needs no configuration)
    interruption_notice_s  seconds between a spot interruption notice and the reclaim (drain budget)
    ready_deadline_s       how long a new deployment may take to answer before the smoke test fails
    family                 how the cloud's instance types group into families (capacity model)
    price_fetcher          "module:function(settings) -> DataFrame" of the cloud's live prices

Adding a target is its own module(s) plus one ``register_target(...)`` call; the CLI's target
choices, the flows' block lookup, the planner's provider filter, the price refresh, the spot drain
budget and the capacity model's family rule all read this list. The module imports nothing heavy.

Targets are chosen by (cloud, kind): a plan's candidate on AWS spot VMs routes to the ``vm`` target
of ``aws``, a serverless candidate to a ``serverless`` target of its cloud when one exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from thrifty.errors import ConfigError


class TargetKind(StrEnum):
    LOCAL = "local"
    VM = "vm"
    KUBERNETES = "kubernetes"
    SERVERLESS = "serverless"


def family_before(separator: str) -> Callable[[str], str]:
    """Family = the instance type up to ``separator`` (``m5.xlarge`` → ``m5``)."""

    def family(instance_type: str) -> str:
        return instance_type.split(separator)[0]

    family.__name__ = f"family_before_{separator!r}"
    return family


def family_digits_masked(instance_type: str) -> str:
    """Family = the size with its digits masked (``Standard_F2s_v2`` → ``Standard_F*s_v*``)."""
    return re.sub(r"\d+", "*", instance_type)


@dataclass(frozen=True)
class TargetDescriptor:
    """Everything the layers above need to know about one target, without importing it."""

    name: str
    kind: TargetKind
    clouds: tuple[str, ...]
    provider: str
    block_slug: str | None = None
    interruption_notice_s: int = 30
    family: Callable[[str], str] | None = None
    price_fetcher: str | None = None
    #: how long the smoke test waits for a new replica to answer: the cloud's own start plus the
    #: rehearsed boot (image pull, fetch, load: bench/cloud_boot.py), with room to spare
    ready_deadline_s: float = 600.0
    description: str = ""

    def __post_init__(self) -> None:
        if ":" not in self.provider:
            raise ValueError(f"target {self.name!r}: provider must be 'module:Class', got {self.provider!r}")
        if not self.clouds:
            raise ValueError(f"target {self.name!r} serves no cloud")
        if self.kind is not TargetKind.LOCAL and self.block_slug is None:
            raise ValueError(f"target {self.name!r} ({self.kind}) needs a block_slug for its configuration")

    @property
    def default_block(self) -> str | None:
        """The block the flows look for when this target is named without a block."""
        return f"{self.block_slug}/default" if self.block_slug else None

    def serves(self, cloud: str, kind: TargetKind) -> bool:
        return cloud in self.clouds and kind is self.kind


_TARGETS: dict[str, TargetDescriptor] = {}


def register_target(descriptor: TargetDescriptor) -> TargetDescriptor:
    """Add a target to the one list (a name registered twice must describe the same target)."""
    existing = _TARGETS.get(descriptor.name)
    if existing is not None and existing != descriptor:
        raise ConfigError(f"target {descriptor.name!r} is registered twice with different descriptors")
    _TARGETS[descriptor.name] = descriptor
    return descriptor


@contextmanager
def registered(descriptor: TargetDescriptor) -> Iterator[TargetDescriptor]:
    """Register ``descriptor`` for the duration of a ``with`` block (tests, plugins tried once)."""
    register_target(descriptor)
    try:
        yield descriptor
    finally:
        _TARGETS.pop(descriptor.name, None)


def all_targets() -> Mapping[str, TargetDescriptor]:
    return dict(_TARGETS)


def target(name: str) -> TargetDescriptor:
    """The descriptor named ``name``; a wrong name fails with the list of valid names."""
    try:
        return _TARGETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown target {name!r}", hint=f"use one of: {', '.join(target_names())}"
        ) from None


def target_names(*, include_local: bool = True) -> list[str]:
    return [n for n, d in _TARGETS.items() if include_local or d.kind is not TargetKind.LOCAL]


def target_for_block(block_ref: str) -> TargetDescriptor:
    """The target configured by a block reference ``slug/name``."""
    slug = block_ref.split("/", 1)[0]
    for descriptor in _TARGETS.values():
        if descriptor.block_slug == slug:
            return descriptor
    slugs = ", ".join(d.block_slug for d in _TARGETS.values() if d.block_slug)
    raise ConfigError(f"no target is configured by block type {slug!r}", hint=f"use one of: {slugs}")


def clouds() -> list[str]:
    """Every cloud some target serves (the planner's valid ``providers``), in registration order."""
    seen: dict[str, None] = {}
    for descriptor in _TARGETS.values():
        if descriptor.kind is not TargetKind.LOCAL:
            seen.update(dict.fromkeys(descriptor.clouds))
    return list(seen)


def targets_for(cloud: str, kind: TargetKind) -> list[TargetDescriptor]:
    """Targets that can run an offer of ``cloud`` of this ``kind``, in registration order."""
    return [d for d in _TARGETS.values() if d.serves(cloud, kind)]


def offer_kind(price_model: str) -> TargetKind:
    """What kind of target runs an offer: serverless offers need a serverless target, others VMs."""
    return TargetKind.SERVERLESS if price_model == "serverless" else TargetKind.VM


def local_target() -> TargetDescriptor:
    return next(d for d in _TARGETS.values() if d.kind is TargetKind.LOCAL)


def cloud_attribute(cloud: str, attribute: str) -> object:
    """The first non-empty ``attribute`` (``family``, ``price_fetcher``, …) among ``cloud``'s targets."""
    for descriptor in _TARGETS.values():
        if cloud in descriptor.clouds and (value := getattr(descriptor, attribute)) is not None:
            return value
    return None


def interruption_notice_s(name: str, default: int = 30) -> int:
    descriptor = _TARGETS.get(name)
    return descriptor.interruption_notice_s if descriptor else default


# -- the built-in targets ---------------------------------------------------------------------------
register_target(
    TargetDescriptor(
        name="local",
        kind=TargetKind.LOCAL,
        clouds=("local",),
        provider="thrifty.providers.local:LocalProvider",
        interruption_notice_s=0,
        ready_deadline_s=60.0,
        description="processes on this machine behind the gateway",
    )
)
register_target(
    TargetDescriptor(
        name="aws",
        kind=TargetKind.VM,
        clouds=("aws",),
        provider="thrifty.providers.aws:AwsProvider",
        block_slug="thrifty-aws-target",
        interruption_notice_s=120,
        family=family_before("."),
        price_fetcher="thrifty.catalog.fetch_aws:fetch_live",
        description="EC2 instances (spot and on-demand)",
    )
)
register_target(
    TargetDescriptor(
        name="gcp",
        kind=TargetKind.VM,
        clouds=("gcp",),
        provider="thrifty.providers.gcp:GcpProvider",
        block_slug="thrifty-gcp-target",
        interruption_notice_s=30,
        family=family_before("-"),
        price_fetcher="thrifty.catalog.fetch_gcp:fetch_live",
        description="Compute Engine VMs (SPOT and STANDARD)",
    )
)
register_target(
    TargetDescriptor(
        name="azure",
        kind=TargetKind.VM,
        clouds=("azure",),
        provider="thrifty.providers.azure:AzureProvider",
        block_slug="thrifty-azure-target",
        interruption_notice_s=30,
        family=family_digits_masked,
        price_fetcher="thrifty.catalog.fetch_azure:fetch_live",
        description="Azure VMs (Spot and Regular)",
    )
)
register_target(
    TargetDescriptor(
        name="kubernetes",
        kind=TargetKind.KUBERNETES,
        clouds=("aws", "gcp", "azure"),
        provider="thrifty.providers.kubernetes:KubernetesProvider",
        block_slug="thrifty-kubernetes-target",
        interruption_notice_s=30,
        ready_deadline_s=300.0,
        description="a Deployment, Service and autoscaler on a cluster",
    )
)

# -- serverless targets: the same runtime image on each cloud's serverless platform ----------------
register_target(
    TargetDescriptor(
        name="aws-lambda",
        kind=TargetKind.SERVERLESS,
        clouds=("aws",),
        provider="thrifty.providers.aws_lambda:LambdaProvider",
        block_slug="thrifty-aws-lambda-target",
        interruption_notice_s=0,
        ready_deadline_s=120.0,
        description="a Lambda function (runtime image from ECR, or a .zip) behind a function URL",
    )
)
register_target(
    TargetDescriptor(
        name="gcp-cloud-run",
        kind=TargetKind.SERVERLESS,
        clouds=("gcp",),
        provider="thrifty.providers.cloud_run:CloudRunProvider",
        block_slug="thrifty-gcp-cloud-run-target",
        interruption_notice_s=0,
        ready_deadline_s=300.0,
        description="a Cloud Run service (min instances 0, revisions)",
    )
)
register_target(
    TargetDescriptor(
        name="azure-container-apps",
        kind=TargetKind.SERVERLESS,
        clouds=("azure",),
        provider="thrifty.providers.container_apps:ContainerAppsProvider",
        block_slug="thrifty-azure-container-apps-target",
        interruption_notice_s=0,
        ready_deadline_s=300.0,
        description="an Azure container app (min replicas 0, HTTP scale rule, revisions)",
    )
)
