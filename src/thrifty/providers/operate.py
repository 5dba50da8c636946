"""Hibernate, wake and scale one deployment on its target, the way the front door and the
hibernation sweep do it (issue 15: the API's hibernate / wake / scale for cloud deployments).

    provider_for_deployment(registry, NAME)   its target's provider, built as the CLI builds it (the
                                              SDK's usual credential chain, the deployment's
                                              region), calls naming NAME going to the live
                                              revision (``NAME-rN`` after an update)
    operate(provider, registry, NAME, verb)   hibernate / wake / scale there, then record what the
                                              target reports (state, ready replicas, endpoints), so
                                              the front door routes to what is there

A serverless target is never stopped: its provider's hibernate drops the warm floor to 0, wake
raises it to at least 1 and scale sets it (provisioned concurrency, min instances, min replicas).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from thrifty.errors import ConfigError
from thrifty.providers.base import DeploymentStatus
from thrifty.registry import Registry

VERBS = ("hibernate", "wake", "scale")
#: (target name, options such as the region) → its provider
Build = Callable[[str, Mapping[str, Any]], Any]


def provider_for_deployment(
    registry: Registry, name: str, provider: str | None = None, build: Build | None = None
) -> Any:
    """The provider that runs ``name`` (target ``provider``, default the row's), seen through its
    name; ``build(target, options)`` makes it (default: the CLI's ``build_provider``)."""
    from thrifty.lifecycle import ServedAs
    from thrifty.providers.base import serving_name
    from thrifty.providers.commands import build_provider

    row = registry.get_deployment(name)
    built = (build or build_provider)(provider or row.provider, {"region": row.region})
    return ServedAs(built, name, serving_name(row))


def operate(provider: Any, registry: Registry, name: str, verb: str, *args: Any) -> DeploymentStatus:
    """``verb`` (hibernate, wake or scale with its replica count) on the target, recorded after."""
    if verb not in VERBS:
        raise ConfigError(f"unknown verb {verb!r}", hint=f"use one of {', '.join(VERBS)}")
    status: DeploymentStatus = getattr(provider, verb)(name, *args)
    record_status(registry, name, status)
    registry.add_event(name, verb, _event_reason(verb, status, args))
    return status


def _event_reason(verb: str, status: DeploymentStatus, args: tuple[Any, ...]) -> str:
    asked = f" to {args[0]}" if args else ""
    return (
        f"{verb}{asked} on {status.provider}: {status.state}, "
        f"{status.replicas_ready}/{status.replicas_desired} replica(s) ready"
    )


def record_status(registry: Registry, name: str, status: DeploymentStatus) -> None:
    """A cloud target's state after hibernate/wake/scale, so the front door routes to what is there."""
    row = registry.get_deployment(name)
    endpoints = list(status.details.get("endpoints") or [])
    registry.upsert_deployment(
        name,
        state=status.state,
        replicas=status.replicas_ready,
        endpoint_url=status.endpoint_url,
        resources={**(row.resources or {}), "endpoints": endpoints},
    )
