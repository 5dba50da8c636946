"""Flow ``deploy-model``: from a model file to the cheapest verified deployment.

ingest → optimize (mapped) → benchmark + fidelity (mapped) → guardrail → price → plan (decision
record) → deploy → smoke test through the gateway → live. Re-running with the same inputs reuses
the registered model, its variants (the registry keys them by content) and their benchmark and
fidelity results (Prefect cache keyed on each variant's sha256), and leaves one deployment.
The deploy step runs in a Prefect transaction: if the smoke test fails, what it created is deleted.

How a deployment is verified before it goes live (``verify``): ``"inference"`` (the default, and
always for the local target) sends one real inference through the deployment's endpoint and
compares it with the original model. ``"state"`` accepts a cloud deployment when its provider
reports it running with every desired replica ready, without calling the model: what a test peer
(moto, a replayed cloud API) can show, or a cloud whose endpoint this machine cannot reach. It
proves less than an inference; the deployment's ``live`` event and the result's ``smoke_test``
(metric ``provider_state``) say which check passed.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, unmapped
from prefect.transactions import transaction
from pydantic import BaseModel, Field

from tasks.benchmark import measure_fidelity, run_benchmark
from tasks.deploy import (
    CONTENT_CACHE,
    ResolvedModel,
    mark_live,
    publish_run_artifacts,
    resolve_model,
    smoke_test,
    verify_state,
)
from tasks.optimize import VariantRef, export_onnx, optimize_graph, quantize_model
from tasks.plan import plan_placement
from tasks.prices import fetch_prices
from tasks.providers import Deployed, Fallback, TargetChoice, choose_target, deploy_to_target
from thrifty import runtime
from thrifty.errors import OptimizeError
from thrifty.optimize.pipeline import applicable_techniques
from thrifty.providers.base import DeploySpec
from thrifty.providers.specs import candidates_for, candidates_in_order, spec_from_candidate
from thrifty.targets import TargetKind, clouds, target_names

#: techniques that derive a variant from the graph-optimized ONNX model, one task run each
DERIVED_TECHNIQUES = ("fp16", "dynamic_int8", "static_int8", "blockwise_int8", "smooth_int8", "search")
ALL_TECHNIQUES = ("export", "graph", *DERIVED_TECHNIQUES)


class DeployModelParams(BaseModel):
    """What to deploy, the targets it must meet and where it may run."""

    model: str = Field(..., description="Path of a model file or folder, or the name of a registered model.")
    name: str | None = Field(None, description="Registry and deployment name; default: from the path.")
    p95_ms: float = Field(50.0, gt=0, description="Latency SLO: p95 per request, in milliseconds.")
    rps: float = Field(20.0, gt=0, description="Traffic while active, in requests per second.")
    active_fraction: float = Field(
        1.0, gt=0, le=1, description="Traffic profile: share of the month with traffic (< 1 = bursty)."
    )
    min_cosine: float = Field(0.99, ge=0, le=1, description="Guardrail: minimum cosine to the original.")
    min_agreement: float = Field(
        0.95,
        ge=0,
        le=1,
        description="Guardrail: minimum nearest-neighbour / top-1 agreement with the original.",
    )
    providers: list[str] = Field(
        default=list(clouds()),
        description="Clouds the plan may use.",
        json_schema_extra={"items": {"type": "string", "enum": list(clouds())}},
    )
    regions: list[str] | None = Field(None, description="Regions the plan may use; all if empty.")
    spot_ok: bool = Field(True, description="Allow spot capacity (interruption risk is priced in).")
    serverless_ok: bool = Field(
        True,
        description="Let the plan choose serverless offers (Lambda, Cloud Run, Container Apps; cold "
        "starts count in the p95 check). A serverless choice deploys on its serverless target; when "
        "that target refuses, the plan's next dedicated candidate is tried.",
    )
    warm_floor: int = Field(
        0,
        ge=0,
        description="Serverless instances kept warm (provisioned concurrency / min instances), priced.",
    )
    techniques: list[str] = Field(
        default=["export", "graph", "dynamic_int8", "static_int8", "search"],
        description="Optimizations to try (fp16 and blockwise_int8 are off by default).",
        json_schema_extra={"items": {"type": "string", "enum": list(ALL_TECHNIQUES)}},
    )
    target: str = Field(
        "auto",
        description="Where to deploy: auto (a target of the plan's cloud and kind whose default block "
        "is saved, else this machine), or a target by name (its default block must be saved).",
        json_schema_extra={"enum": ["auto", *target_names()]},
    )
    target_block: str | None = Field(
        None, description="A saved target block (slug/name, e.g. thrifty-aws-target/prod); overrides target."
    )
    refresh_prices: bool = Field(False, description="Fetch live prices before planning (needs network).")
    bench_runs: int = Field(30, ge=1, description="Timed runs per benchmark case.")
    verify: Literal["inference", "state"] = Field(
        "inference",
        description="How a deployment is accepted before going live: inference = one real request "
        "through its endpoint, compared with the original model (always used for the local target); "
        "state = the provider reports it running with every replica ready, no request sent (for "
        "test peers such as moto or replayed cloud APIs, or endpoints this machine cannot reach).",
    )


def _optimize(version: ResolvedModel, techniques: list[str], tolerance: dict[str, float]) -> list[VariantRef]:
    version_id = version.version_id
    refs = [export_onnx(version_id)]
    usable = applicable_techniques(techniques, version.format)  # int8 does not apply to a tree model
    for skipped in sorted(set(techniques) - set(usable) - {"export"}):
        print(f"technique {skipped} does not apply to a {version.format} model: skipped")
    if not {"graph", *DERIVED_TECHNIQUES} & set(usable):
        return refs
    refs.append(optimize_graph(version_id, refs[0]))
    derived = [t for t in DERIVED_TECHNIQUES if t in usable]
    futures = quantize_model.map(version_id, derived, unmapped(refs[1]), unmapped("cpu"), unmapped(tolerance))
    for technique, state in zip(derived, futures.result(raise_on_failure=False), strict=True):
        if isinstance(state, VariantRef):
            refs.append(state)
        else:  # one technique failing (e.g. no int8 candidate meets the tolerance) does not stop the run
            print(f"technique {technique} produced no variant: {state}")
    return refs


def _measure(
    refs: list[VariantRef], params: DeployModelParams, tolerance: dict[str, float]
) -> list[dict[str, Any]]:
    spec = {"batch_sizes": (1, 8), "threads": (1,), "seq_lens": (128,), "runs": params.bench_runs}
    ids = [r.variant_id for r in refs]
    bench = run_benchmark.with_options(cache_policy=CONTENT_CACHE, persist_result=True)
    fidelity = measure_fidelity.with_options(cache_policy=CONTENT_CACHE, persist_result=True)
    # one benchmark at a time: each times its variant in a fresh process on this machine, and five
    # mapped at once on 2 cores measured each other (p95 inflated ~4×, the 50 ms SLO unreachable)
    for variant_id in ids:
        bench(variant_id, spec)
    return list(fidelity.map(ids, unmapped(tolerance)).result())


@flow(name="deploy-model", log_prints=True)
def deploy_model(params: DeployModelParams) -> dict[str, Any]:
    """Deploy a model at the lowest cost that meets its SLO; returns the summary."""
    version = resolve_model(params.model, params.name)
    tolerance = {"min_cosine": params.min_cosine, "min_agreement": params.min_agreement}
    refs = _optimize(version, params.techniques, tolerance)
    verdicts = _measure(refs, params, tolerance)
    accepted = [v for v in verdicts if v["status"] == "accepted"]
    print(f"{len(refs)} variants, {len(accepted)} within the guardrail")
    if not accepted:
        raise OptimizeError(
            f"no variant of {version.model} is within the tolerance {tolerance}",
            hint="loosen min_cosine / min_agreement or add techniques",
        )
    if params.refresh_prices:
        fetch_prices(params.providers)
    slo = {
        "latency_ms_p95": params.p95_ms,
        "accepted_only": True,
        "providers": params.providers,
        "regions": params.regions,
        "spot_ok": params.spot_ok,
        "serverless_ok": params.serverless_ok,
        "warm_floor": params.warm_floor,
    }
    traffic = {"rps": params.rps, "active_fraction": params.active_fraction}
    planned = plan_placement(version.model, slo, traffic)
    chosen = planned["record"]["chosen"]
    choice = _route(chosen, planned, params)
    name = params.name or version.model
    specs = _deploy_specs(name, version, refs, planned, choice)
    fallbacks = _fallbacks(name, version, refs, planned, choice, params)
    with transaction():
        cloud_state = params.verify == "state" and choice.descriptor.kind is not TargetKind.LOCAL
        deployed = deploy_to_target(choice, specs, fallbacks, "state" if cloud_state else "smoke")
        choice = deployed.target or choice
        if params.verify == "state" and choice.descriptor.kind is not TargetKind.LOCAL:
            smoke = verify_state(name, choice)
        else:
            deadline_s = choice.descriptor.ready_deadline_s
            smoke = smoke_test(name, version.version_id, params.min_cosine, deadline_s)
    return _finish(name, planned, choice, deployed, smoke)


def _finish(
    name: str, planned: dict[str, Any], choice: TargetChoice, deployed: Deployed, smoke: dict[str, Any]
) -> dict[str, Any]:
    reason = choice.reason + "".join(f"; skipped {why}" for why in deployed.skipped)
    live = mark_live(name, planned["plan_id"], smoke, reason)
    published = publish_run_artifacts(name, reason)
    print(published["summary"])
    return {
        "deployment": name,
        "endpoint_url": live["endpoint_url"] or deployed.endpoint_url,
        "plan_id": planned["plan_id"],
        "chosen": planned["record"]["chosen"],
        "deployed": deployed.spec.model_dump(mode="json"),
        "baseline": planned["record"].get("baseline"),
        "target": choice.model_dump(),
        "smoke_test": smoke,
        "curl": published["curl"],
    }


def _route(chosen: dict[str, Any], planned: dict[str, Any], params: DeployModelParams) -> TargetChoice:
    """The chosen offer's target; a serverless choice with no serverless target configured goes to the
    target of the plan's next dedicated candidate when one is configured (else this machine)."""
    choice = choose_target(chosen, params.target_block or params.target)
    auto = params.target == "auto" and not params.target_block
    if not auto or chosen["price_model"] != "serverless" or choice.descriptor.kind is not TargetKind.LOCAL:
        return choice
    dedicated = [c for c in candidates_in_order(planned["record"]) if c["price_model"] != "serverless"]
    if not dedicated:
        return choice
    alternative = choose_target(dedicated[0], "auto")
    return choice if alternative.descriptor.kind is TargetKind.LOCAL else alternative


def _fallbacks(
    name: str,
    version: ResolvedModel,
    refs: list[VariantRef],
    planned: dict[str, Any],
    choice: TargetChoice,
    params: DeployModelParams,
) -> list[Fallback]:
    """Where a refused serverless choice goes next: the target of the plan's next dedicated candidate."""
    if choice.descriptor.kind is not TargetKind.SERVERLESS or params.target != "auto" or params.target_block:
        return []
    dedicated = [c for c in candidates_in_order(planned["record"]) if c["price_model"] != "serverless"]
    if not dedicated:
        return []
    next_choice = choose_target(dedicated[0], "auto")
    return [Fallback(choice=next_choice, specs=_deploy_specs(name, version, refs, planned, next_choice))]


def _deploy_specs(
    name: str, version: ResolvedModel, refs: list[VariantRef], planned: dict[str, Any], choice: TargetChoice
) -> list[DeploySpec]:
    """The plan's candidates this target can run, chosen offer first, as specs of the chosen variant."""
    chosen = planned["record"]["chosen"]
    ref = next((r for r in refs if r.name == chosen["variant"]), None)
    if ref is None:
        raise OptimizeError(f"the plan chose {chosen['variant']!r}, which this run did not make")
    variant = runtime.registry().get_variant(ref.variant_id)
    return [
        spec_from_candidate(
            candidate,
            name=name,
            model_name=version.model,
            variant_id=variant.id,
            artifact_sha256=variant.artifact.sha256,
            plan_id=planned["plan_id"],
        )
        for candidate in candidates_for(planned["record"], choice.descriptor)
    ]
