"""Prefect tasks around thrifty.serving and the local provider (deploy, hibernate, wake, smoke test)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from thrifty.providers.base import DeploymentStatus, DeploySpec


def _status_dict(status: DeploymentStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "provider": status.provider,
        "state": status.state,
        "replicas_desired": status.replicas_desired,
        "replicas_ready": status.replicas_ready,
        "endpoint_url": status.endpoint_url,
    }


@task(name="deploy-variant", cache_policy=NO_CACHE)
def deploy_variant(
    variant_id: int, name: str | None = None, replicas: int = 1, serving: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Deploy a registered variant on this machine behind the gateway (idempotent)."""
    from thrifty import runtime
    from thrifty.providers.local import LocalProvider

    registry = runtime.registry()
    variant = registry.get_variant(variant_id)
    version = registry.get_model_version_by_id(variant.model_version_id)
    spec = DeploySpec(
        name=name or f"{version.model.name}-{variant.name}".replace("/", "-"),
        model_name=version.model.name,
        variant_id=variant.id,
        artifact_sha256=variant.artifact.sha256,
        replicas=replicas,
        serving=dict(serving or {}),
    )
    return _status_dict(LocalProvider().deploy(spec))


@task(name="hibernate-deployment", cache_policy=NO_CACHE)
def hibernate_deployment(name: str) -> dict[str, Any]:
    """Scale a local deployment to zero; the gateway wakes it on the next request."""
    from thrifty.providers.local import LocalProvider

    return _status_dict(LocalProvider(start_gateway=False).hibernate(name))


@task(name="wake-deployment", cache_policy=NO_CACHE)
def wake_deployment(name: str) -> dict[str, Any]:
    """Start a hibernated local deployment's replicas now."""
    from thrifty.providers.local import LocalProvider

    return _status_dict(LocalProvider().wake(name))


@task(name="smoke-test", cache_policy=NO_CACHE)
def smoke_test(
    name: str, inputs: list[dict[str, Any]], expected: dict[str, Any], rtol: float = 1e-3, atol: float = 1e-4
) -> dict[str, Any]:
    """One real inference through the gateway, compared with ``expected`` within the tolerance."""
    from thrifty.serving.smoke import smoke_test as _smoke_test

    return _smoke_test(name, inputs, expected, rtol=rtol, atol=atol)
