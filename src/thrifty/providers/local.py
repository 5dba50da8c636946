"""The local provider: replicas are processes on this machine, behind the gateway daemon.

State lives in the registry's ``deployments`` row (desired replicas, state, the spec with the
resolved local file paths); the gateway reads it and converges (``thrifty up`` runs the gateway).
Every call is idempotent: deploying the same spec twice leaves one row and one set of replicas.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from thrifty.providers.base import (
    DeploymentStatus,
    DeploySpec,
    Feature,
    ManagedResource,
    require,
    spec_to_dict,
)
from thrifty.serving import daemon
from thrifty.settings import Settings, get_settings

if TYPE_CHECKING:
    from thrifty.registry import Registry

PROVIDER = "local"


class LocalProvider:
    name: ClassVar[str] = PROVIDER
    unsupported: ClassVar[Mapping[Feature, str]] = {
        Feature.SPOT: "local machine has no spot market",
        Feature.GPU: "the local provider serves on CPU (onnxruntime CPUExecutionProvider)",
        Feature.REGIONS: "one machine is one region",
        Feature.AUTOSCALE: "replicas are set by `thrifty` (scale, hibernate, wake), not by load",
    }

    def __init__(
        self,
        registry: Registry | None = None,
        store: Any = None,
        settings: Settings | None = None,
        *,
        start_gateway: bool = True,
        wait_ready_s: float = 30.0,
    ) -> None:
        from thrifty import runtime

        self.settings = settings or get_settings()
        self.registry = registry or runtime.registry(self.settings)
        self.store = store or runtime.store(self.settings)
        self.start_gateway = start_gateway
        self.wait_ready_s = wait_ready_s

    # -- the Provider protocol -------------------------------------------------------------------
    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        require(self, spec)
        from thrifty.serving.resolve import resolve_files

        files = resolve_files(spec, self.registry, self.store, self.settings.home / "cache")
        stored = spec_to_dict(spec) | {"runtime": files.as_dict()}
        existing = self.registry.find_deployment(spec.name)
        unchanged = existing is not None and existing.spec == stored and existing.state != "deleted"
        if not unchanged:
            self.registry.upsert_deployment(
                spec.name,
                provider=PROVIDER,
                region="local",
                variant_id=spec.variant_id or None,
                plan_id=spec.plan_id,
                state="running" if spec.replicas > 0 else "hibernated",
                replicas=spec.replicas,
                spec=stored,
                endpoint_url=self._endpoint(spec.name),
            )
            self.registry.add_event(
                spec.name,
                "deploy",
                f"{spec.replicas} replica(s) of artifact {spec.artifact_sha256[:12]}",
                details={"variant_id": spec.variant_id, "artifact_sha256": spec.artifact_sha256},
            )
        row = self.registry.get_deployment(spec.name)
        return self._converge(spec.name, row.replicas if row.state == "running" else 0, ensure_gateway=True)

    def promote(self, spec: DeploySpec, staged_name: str) -> DeploymentStatus:
        """Swap deployment ``spec.name`` to ``spec`` in place, then remove the verified staged copy.

        The gateway starts replicas of the new spec beside the current ones and drains the old ones
        only once the new ones serve (see ``serving.gateway``), so no request is refused.
        """
        row = self.registry.get_deployment(spec.name)
        status = self.deploy(spec.with_changes(replicas=max(row.replicas, 1)))
        deadline = time.monotonic() + self.wait_ready_s
        while time.monotonic() < deadline and self._swapping(spec.name):
            time.sleep(0.05)
        self.delete(staged_name)
        return status

    def _swapping(self, name: str) -> bool:
        state = daemon.gateway_state(self.settings) or {}
        model = dict(state.get("models") or {}).get(name) or {}  # type: ignore[call-overload]
        return bool(model.get("stale") or model.get("retiring"))

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        row = self.registry.get_deployment(name)
        if row.replicas != replicas or row.state not in ("running", "hibernated"):
            state = "running" if replicas > 0 else "hibernated"
            self.registry.upsert_deployment(name, replicas=replicas, state=state)
            self.registry.add_event(name, "scale", f"{row.replicas} → {replicas} replica(s)")
        return self._converge(name, replicas)

    def hibernate(self, name: str) -> DeploymentStatus:
        row = self.registry.get_deployment(name)
        if row.state != "hibernated":
            self.registry.upsert_deployment(name, state="hibernated", replicas=0)
            self.registry.add_event(name, "hibernate", "scaled to zero; weights stay on local disk")
        return self._converge(name, 0)

    def wake(self, name: str) -> DeploymentStatus:
        row = self.registry.get_deployment(name)
        replicas = max(1, int((row.spec or {}).get("replicas", 1)))
        if row.state != "running" or row.replicas < 1:
            self.registry.upsert_deployment(name, state="running", replicas=replicas)
            self.registry.add_event(name, "wake", "woken on request")
        return self._converge(name, replicas)

    def status(self, name: str) -> DeploymentStatus:
        row = self.registry.get_deployment(name)
        live = self._live_replicas(name)
        return self._status(row, live)

    def delete(self, name: str) -> None:
        if self.registry.delete_deployment(name):
            daemon.notify_gateway(self.settings)

    def list_managed(self) -> list[ManagedResource]:
        resources = []
        pid = daemon.daemon_pid(self.settings)
        if pid is not None:
            resources.append(
                ManagedResource(
                    PROVIDER,
                    "gateway",
                    str(pid),
                    "local",
                    "",
                    details={"url": daemon.gateway_url(self.settings)},
                )
            )
        state = daemon.gateway_state(self.settings) or {}
        for name, info in dict(state.get("models") or {}).items():  # type: ignore[call-overload]
            for replica in info.get("replicas", []):
                resources.append(
                    ManagedResource(
                        PROVIDER,
                        "replica",
                        str(replica["pid"]),
                        "local",
                        name,
                        details={"port": replica["port"]},
                    )
                )
        return resources

    # -- helpers --------------------------------------------------------------------------------
    def _endpoint(self, name: str) -> str:
        return f"{daemon.gateway_url(self.settings)}/v2/models/{name}"

    def _converge(self, name: str, wanted: int, *, ensure_gateway: bool = False) -> DeploymentStatus:
        """Tell the gateway (starting it if allowed) and wait briefly for ``wanted`` live replicas."""
        if self.start_gateway and (wanted > 0 or ensure_gateway):
            daemon.start_daemon(self.settings)
        if daemon.notify_gateway(self.settings) is not None:
            deadline = time.monotonic() + self.wait_ready_s
            while time.monotonic() < deadline and len(self._live_replicas(name)) != wanted:
                time.sleep(0.05)
        return self.status(name)

    def _live_replicas(self, name: str) -> list[dict[str, Any]]:
        state = daemon.gateway_state(self.settings) or {}
        models: dict[str, Any] = dict(state.get("models") or {})  # type: ignore[call-overload]
        return list((models.get(name) or {}).get("replicas", []))

    def _status(self, row: Any, live: list[dict[str, Any]]) -> DeploymentStatus:
        resources = tuple(
            ManagedResource(
                PROVIDER, "replica", str(r["pid"]), "local", row.name, details={"port": r["port"]}
            )
            for r in live
        )
        state = row.state
        if state == "running" and len(live) < row.replicas:
            state = "pending" if not live else "degraded"
        return DeploymentStatus(
            name=row.name,
            provider=PROVIDER,
            state=state,
            replicas_desired=row.replicas,
            replicas_ready=len(live),
            endpoint_url=row.endpoint_url,
            resources=resources,
            details={"ports": [r["port"] for r in live], "spec": row.spec},
        )


def spec_for_path(
    path: Path, name: str, store: Any, *, replicas: int = 1, serving: Mapping[str, Any] | None = None
) -> DeploySpec:
    """A DeploySpec for a plain ONNX file (or folder) that is not a registered variant yet."""
    from thrifty.artifacts.base import put_path

    blob = put_path(store, path)
    return DeploySpec(
        name=name,
        model_name=name,
        variant_id=0,
        artifact_sha256=blob.sha256,
        replicas=replicas,
        serving=dict(serving or {}),
    )
