"""Deploy specs from plans and variants — the one place a ``DeploySpec`` is built.

``spec_from_candidate`` turns a planner candidate into a spec, ``candidates_in_order`` lists what
to try (the chosen offer first), ``spec_for_variant`` makes the spec of one registered variant,
``for_target`` adapts a spec to where it runs (the local target serves one replica on this
machine), and ``deploy_first_available`` deploys the first candidate a target can take: one out of
capacity or quota, or of a kind the target does not run, falls through to the next.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from thrifty.errors import CapacityError, QuotaExceededError, UnsupportedFeatureError
from thrifty.providers.base import DeploymentStatus, DeploySpec, PriceModel, Provider
from thrifty.targets import TargetDescriptor, TargetKind

if TYPE_CHECKING:
    from thrifty.registry import Registry


def spec_from_candidate(
    candidate: Mapping[str, Any],
    *,
    name: str,
    model_name: str,
    variant_id: int,
    artifact_sha256: str,
    plan_id: int | None = None,
) -> DeploySpec:
    """A DeploySpec for one candidate of a planner decision record (``chosen`` or ``candidates[i]``)."""
    price_model = PriceModel(str(candidate["price_model"]))
    if price_model is PriceModel.SERVERLESS:  # replicas = the warm floor; the platform scales above it
        replicas, floor = int(candidate.get("warm_floor") or 0), 0.0
        serving = {"concurrency": int(candidate.get("serverless_concurrency") or 1)}
    else:
        machines = float(candidate.get("machines") or 1.0)
        floor = float(candidate.get("floor_machines") or 0.0)
        replicas, serving = max(1, math.ceil(machines - 1e-9)), {}
    return DeploySpec(
        name=name,
        model_name=model_name,
        variant_id=variant_id,
        artifact_sha256=artifact_sha256,
        region=str(candidate.get("zone") or candidate["region"]),
        instance_type=str(candidate["instance_type"]),
        price_model=price_model,
        replicas=replicas,
        on_demand_floor=min(replicas, math.ceil(floor - 1e-9)),
        plan_id=plan_id,
        serving=serving,
    )


def candidates_in_order(record: Mapping[str, Any], provider: str | None = None) -> list[dict[str, Any]]:
    """The chosen candidate, then the other feasible ones of the same variant (plan order, no repeats)."""
    chosen = dict(record["chosen"])
    out, seen = [], set()
    for candidate in [chosen, *record.get("candidates", [])]:
        key = (candidate["provider"], candidate.get("zone") or candidate["region"], candidate["instance_type"],
               candidate["price_model"])  # fmt: skip
        if (
            key in seen
            or candidate.get("feasible") is False
            or candidate.get("variant") != chosen.get("variant")
        ):
            continue
        if provider is not None and candidate["provider"] != provider:
            continue
        seen.add(key)
        out.append(dict(candidate))
    return out


def deploy_first_available(
    candidates: Sequence[DeploySpec], provider_for: Callable[[DeploySpec], Provider]
) -> tuple[DeploySpec, DeploymentStatus, list[str]]:
    """Deploy the first candidate (in plan order) that has capacity and quota.

    Returns (the spec deployed, its status, why each earlier candidate was skipped). A provider's
    failed deploy cleans up after itself, so skipping a candidate leaves nothing behind.
    """
    skipped: list[str] = []
    for spec in candidates:
        try:
            return spec, provider_for(spec).deploy(spec), skipped
        except (CapacityError, QuotaExceededError, UnsupportedFeatureError) as exc:
            skipped.append(f"{spec.region}/{spec.instance_type}/{spec.price_model.value}: {exc.message}")
    raise CapacityError(
        f"no candidate of the plan could be deployed ({len(candidates)} tried)",
        hint="; ".join(skipped) or "the plan has no candidates",
    )


def spec_for_variant(
    registry: Registry, variant_id: int, *, name: str | None = None, **overrides: Any
) -> DeploySpec:
    """The spec of one registered variant (default name ``model-variant``); ``overrides`` set the rest."""
    variant = registry.get_variant(variant_id)
    version = registry.get_model_version_by_id(variant.model_version_id)
    fields = {k: v for k, v in overrides.items() if v is not None}
    return DeploySpec(
        name=name or default_name(version.model.name, variant.name),
        model_name=version.model.name,
        variant_id=variant.id,
        artifact_sha256=variant.artifact.sha256,
        **fields,
    )


def copy_artifacts(spec: DeploySpec, provider: Any) -> list[dict[str, Any]]:
    """Copy the spec's variant (and tokenizer) to the store the provider's VMs read from, when it is
    not there (``artifacts.transfer``); targets without a boot config (local, Kubernetes) copy nothing.
    A GCS / Azure Blob store is written with the provider's own credentials (``store_credentials``)."""
    from thrifty.artifacts.transfer import copy_to_target_store

    boot = getattr(getattr(provider, "target", None), "boot", None)
    if boot is None:
        return []
    shas = [spec.artifact_sha256, str(spec.serving.get("tokenizer_sha256") or "")]
    shas += [str(spec.serving["optimized_sha256"])] if spec.serving.get("optimized_sha256") else []
    s3 = boot.artifact_store_url.startswith("s3://")
    endpoint = boot.s3_endpoint_url if s3 else boot.store_endpoint_url
    credentials = None if s3 or not hasattr(provider, "store_credentials") else provider.store_credentials()
    copies = copy_to_target_store(
        shas, boot.artifact_store_url, target_endpoint_url=endpoint, target_credentials=credentials
    )
    return [c.to_dict() for c in copies if c.copied]


def with_optimized_graph(spec: DeploySpec, descriptor: TargetDescriptor, store: Any) -> DeploySpec:
    """A serverless deployment starts cold again and again: its graph is optimized once, here at
    deploy time (``thrifty.serving.prebuilt``), stored beside the variant, and the runtime loads it
    instead of optimizing at every start. Other targets, a spec that has one or opted out
    (``serving.optimized_graph: false``), and a variant onnxruntime cannot save are left as they are."""
    if descriptor.kind is not TargetKind.SERVERLESS or spec.serving.get("optimized_sha256"):
        return spec
    if spec.serving.get("optimized_graph", True) is False:
        return spec
    from thrifty.errors import ThriftyError
    from thrifty.serving.prebuilt import store_optimized

    try:
        optimized = store_optimized(store, spec.artifact_sha256)
    except ThriftyError:
        return spec  # the runtime then optimizes at start: slower, still correct
    return spec.with_changes(serving={**spec.serving, "optimized_sha256": optimized})


def default_name(model: str, variant: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{model}-{variant}".lower()).strip("-")[:50]


def for_target(spec: DeploySpec, descriptor: TargetDescriptor) -> DeploySpec:
    """``spec`` as ``descriptor`` runs it: the local target serves one on-demand replica here."""
    if descriptor.kind is not TargetKind.LOCAL:
        return spec
    return spec.with_changes(
        region="local", instance_type="local", price_model=PriceModel.ON_DEMAND, replicas=1, on_demand_floor=0
    )


def candidates_for(record: Mapping[str, Any], descriptor: TargetDescriptor) -> list[dict[str, Any]]:
    """The plan's candidates ``descriptor`` can be asked to run (all of them for the local target)."""
    if descriptor.kind is TargetKind.LOCAL:
        return candidates_in_order(record)[:1]
    return [c for c in candidates_in_order(record) if c["provider"] in descriptor.clouds]
