"""Prefect tasks of the deploy-model flow that are not another stage's: resolving the model, the
smoke test (or, with verify="state", the provider's own report), marking live, artifacts. Choosing
the target and deploying to it are ``tasks.providers``'.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE, CacheKeyFnPolicy
from prefect.context import TaskRunContext
from pydantic import BaseModel

from tasks.providers import TargetChoice, build_provider
from thrifty import report, runtime, tls, tokens
from thrifty.errors import ConfigError, ProviderError
from thrifty.providers.base import serving_name
from thrifty.providers.specs import spec_for_variant
from thrifty.settings import get_settings
from thrifty.targets import TargetKind


def variant_content_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key of a per-variant task: the variant's bytes (sha256), the registry and the inputs.

    Same bytes + same settings → the stored result is reused; a changed variant or a different
    registry runs the task again.
    """
    variant = runtime.registry().get_variant(int(parameters["variant_id"]))
    rest = {k: v for k, v in parameters.items() if k != "variant_id"}
    material = json.dumps(
        [context.task.name, variant.artifact.sha256, get_settings().resolved_database_url, rest],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


CONTENT_CACHE = CacheKeyFnPolicy(cache_key_fn=variant_content_key)


class ResolvedModel(BaseModel):
    """The model version a run works on."""

    model: str
    version: int
    version_id: int
    sha256: str
    format: str
    created: bool


@task(name="resolve-model", cache_policy=NO_CACHE)
def resolve_model(model: str, name: str | None = None) -> ResolvedModel:
    """A registered model name → its newest version; anything else must be a path to ingest."""
    from thrifty.ingest import ingest_model

    registry = runtime.registry()
    path = Path(model).expanduser()
    if path.exists():
        result = ingest_model(path, name, registry=registry, store=runtime.store())
        version, created = result.version, result.created
    elif "/" not in model and model in {m.name for m in registry.list_models()}:
        version, created = registry.get_model_version(model), False
    else:
        raise ConfigError(
            f"{model!r} is neither a file or folder nor a registered model",
            hint="pass the path of a model, or a name listed by `thrifty models list`",
        )
    return ResolvedModel(
        model=version.model.name,
        version=version.version,
        version_id=version.id,
        sha256=version.sha256,
        format=version.format,
        created=created,
    )


# No Prefect retries: this task runs inside the deploy transaction, and Prefect rolls the whole
# transaction back on the first failed attempt, so a retry would only find the deployment gone.
# deploy-local already waits until the gateway and the replicas are live.
@task(name="smoke-test", cache_policy=NO_CACHE)
def smoke_test(
    deployment: str, model_version_id: int, min_cosine: float, ready_deadline_s: float = 60.0
) -> dict[str, Any]:
    """A real inference through the deployment's endpoint (OIP path, its own token), compared with
    the original model's answer, once the endpoint is ready (waiting up to ``ready_deadline_s``)."""
    from thrifty import tokens
    from thrifty.errors import NotFoundError
    from thrifty.reach import endpoint_client
    from thrifty.serving.resolve import resolve_files
    from thrifty.verify import model_url
    from thrifty.verify import smoke_test as run_smoke

    registry, store, settings = runtime.registry(), runtime.store(), get_settings()
    row = registry.get_deployment(deployment)
    original = next((v for v in registry.list_variants(model_version_id) if v.technique == "export"), None)
    if original is None:
        raise ConfigError(f"model version {model_version_id} has no fp32 export to compare with")
    reference = spec_for_variant(registry, original.id, name=f"{deployment}-reference")
    files = resolve_files(reference, registry, store, settings.home / "cache")
    try:
        token: str | None = tokens.token_for(settings.home, deployment)
    except NotFoundError:  # a local deployment: the gateway's tokens, if any
        token = settings.api_tokens[0].get_secret_value() if settings.api_tokens else None
    if not row.endpoint_url:
        raise ConfigError(f"deployment {deployment!r} reports no endpoint", hint="see `thrifty status`")
    with endpoint_client(row.spec, settings.resolve) as client:  # pinned TLS for a cloud endpoint
        result = run_smoke(
            f"{model_url(row.endpoint_url, deployment)}/infer",
            files.model_path,
            files.tokenizer_path,
            min_cosine=min_cosine,
            token=token,
            ready_deadline_s=ready_deadline_s,
            client=client,
        )
    if not result.ok:
        raise ConfigError(
            f"smoke test of {deployment!r} failed: {result.detail}",
            hint="the deployed variant does not answer like the original; the deployment is rolled back",
        )
    answer: dict[str, Any] = result.to_dict()
    return answer


@task(name="verify-state", cache_policy=NO_CACHE)
def verify_state(deployment: str, target: TargetChoice) -> dict[str, Any]:
    """Accept a cloud deployment by what its provider reports: running, every desired replica ready.

    No request reaches the model (verify="state"): for test peers and unreachable endpoints. The
    registry row the deploy step wrote must agree, so a stale or half-recorded deployment fails too.
    """
    row = runtime.registry().get_deployment(deployment)
    status = build_provider(target).status(serving_name(row))
    detail = (
        f"{status.provider} reports {status.state}, "
        f"{status.replicas_ready}/{status.replicas_desired} replicas ready (registry: {row.state})"
    )
    # a serverless deployment at its warm floor of 0 is ready once it has an endpoint: the platform
    # starts an instance per request
    serverless = target.descriptor.kind is TargetKind.SERVERLESS
    least = 0 if serverless and status.endpoint_url else 1
    ready = status.replicas_ready >= max(least, status.replicas_desired)
    if status.state != "running" or not ready or row.state != "running":
        raise ProviderError(
            f"state check of {deployment!r} failed: {detail}",
            hint=f"look at the deployment on {target.block or target.provider}; the deployment is rolled back",
        )
    return {
        "ok": True,
        "metric": "provider_state",
        "detail": f"{detail}; no inference sent",
        "state": status.state,
        "replicas_ready": status.replicas_ready,
        "replicas_desired": status.replicas_desired,
    }


def _check_name(smoke: dict[str, Any]) -> str:
    return "state check" if smoke.get("metric") == "provider_state" else "smoke test"


@task(name="mark-live", cache_policy=NO_CACHE)
def mark_live(deployment: str, plan_id: int, smoke: dict[str, Any], target_reason: str) -> dict[str, Any]:
    registry = runtime.registry()
    row = registry.get_deployment(deployment)
    registry.upsert_deployment(
        deployment,
        plan_id=plan_id,
        resources={**row.resources, "verified": smoke, "target_reason": target_reason},
    )
    registry.add_event(deployment, "live", reason=f"{_check_name(smoke)} passed: {smoke['detail']}")
    for revision in registry.list_revisions(deployment):  # a first deploy's revision 1
        if revision.state == "staged":
            registry.update_revision(revision.id, state="live")
    return {"name": deployment, "endpoint_url": row.endpoint_url, "state": row.state}


@task(name="publish-run-artifacts", cache_policy=NO_CACHE)
def publish_run_artifacts(deployment: str, target_reason: str) -> dict[str, Any]:
    """The markdown summary, the variants table, the top offers table and a link to the endpoint."""
    data = report.collect(runtime.registry(), deployment)
    endpoint = str(data.deployment.get("endpoint_url") or "")
    inputs = _curl_inputs(deployment)
    curl = (
        report.curl_example(endpoint.split("/v2/")[0], deployment, inputs=inputs, **_curl_access(deployment))
        if endpoint
        else None
    )
    summary = report.summary_markdown(data, curl=curl) + f"\n**Target:** {target_reason}\n"
    key = deployment.lower().replace("_", "-").replace(".", "-")
    create_markdown_artifact(
        key=f"{key}-summary", markdown=summary, description=f"deploy-model: {deployment}"
    )
    create_table_artifact(
        key=f"{key}-variants", table=report.variants_table(data), description="variants vs the original"
    )
    create_table_artifact(
        key=f"{key}-offers", table=report.offers_table(data), description="cheapest offers at the SLO"
    )
    if endpoint:
        create_link_artifact(key=f"{key}-endpoint", link=endpoint, link_text=f"{deployment} endpoint")
    return {"summary": summary, "curl": curl, "endpoint_url": endpoint}


def _curl_access(deployment: str) -> dict[str, str]:
    """The pinned key and the token file a request to a cloud endpoint needs (none for local ones)."""
    row = runtime.registry().find_deployment(deployment)
    if row is None or row.provider == "local":
        return {}
    serving = (row.spec or {}).get("serving") or {}
    access: dict[str, str] = {}
    token_file = tokens.token_path(get_settings().home, deployment)
    if token_file.is_file():
        access["token_file"] = str(token_file)
    if serving.get("tls_cert_pem"):
        access["pinned_pubkey"] = tls.pubkey_pin(str(serving["tls_cert_pem"]))
    return access


def _curl_inputs(deployment: str) -> list[dict[str, Any]] | None:
    """None for Hugging Face text models (the server tokenizes a sentence); zeros shaped like the
    model's inputs otherwise, so the curl in the summary works for any model."""
    registry = runtime.registry()
    row = registry.get_deployment(deployment)
    if not row.variant_id:
        return None
    version = registry.get_model_version_by_id(registry.get_variant(row.variant_id).model_version_id)
    return None if version.format == "huggingface" else report.example_inputs(version.signature)
