"""Kubernetes target: the manifests of ``k8s_manifests`` applied with server-side apply.

Every object is sent as ``PATCH …?fieldManager=thrifty&force=true`` with
``Content-Type: application/apply-patch+yaml``: applying the same spec twice changes nothing, and a
field thrifty stops sending is removed by the API server (thrifty owns it). Objects of the
deployment that a new apply no longer produces (the HPA after hibernate, the floor Deployment when
the floor drops to 0) are pruned by label. The deployment's spec rides along as an annotation, so
``scale``/``wake`` need nothing but the cluster.

``deploy``/``scale``/``wake`` wait, like ``kubectl rollout status``, until every Deployment reports its
``readyReplicas`` (polls back off from 0.05 s to ``poll_s``) or ``ready_timeout_s`` passes; then they
return the status as it is (``pending``: the caller's check rolls back). With KEDA or Knative
scale-to-zero nothing is waited for: no pod need run before the first request.

The client is the official ``kubernetes`` ApiClient (built from a kubeconfig by the block); this
module uses its raw ``call_api`` so any resource, CRDs included, goes through the same path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from thrifty.errors import (
    ConfigError,
    CredentialsError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    ThriftyError,
)
from thrifty.providers.base import DeploymentStatus, DeploySpec, Feature, ManagedResource, require
from thrifty.providers.gc import DEPLOYMENT_LABEL, MANAGED_LABEL, label_value
from thrifty.providers.k8s_manifests import (
    SPEC_ANNOTATION,
    KubernetesTarget,
    manifests,
    secret_name,
    spec_from_annotation,
    tls_enabled,
)

if TYPE_CHECKING:
    from thrifty.providers.boot import BootConfig

FIELD_MANAGER = "thrifty"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
#: (apiVersion, kind) → (URL prefix, plural); the kinds thrifty creates
KINDS: dict[tuple[str, str], tuple[str, str]] = {
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets"),
    ("http.keda.sh/v1alpha1", "HTTPScaledObject"): ("/apis/http.keda.sh/v1alpha1", "httpscaledobjects"),
    ("serving.knative.dev/v1", "Service"): ("/apis/serving.knative.dev/v1", "services"),
}
_CRD_GROUPS = {"http.keda.sh": "the KEDA HTTP add-on", "serving.knative.dev": "Knative Serving"}


def _translate(status: int, body: str, what: str) -> ThriftyError:
    try:
        message = str(json.loads(body).get("message", body))
    except ValueError:
        message = body[:300]
    text = f"Kubernetes {what} refused ({status}): {message}"
    if status == 401:
        return CredentialsError(text, hint="the kubeconfig's token or certificate was rejected; refresh it")
    if status == 403 and "exceeded quota" in message:
        return QuotaExceededError(text, hint="raise the namespace ResourceQuota or lower cpu/memory requests")
    if status == 403:
        return CredentialsError(text, hint=f"grant thrifty's service account RBAC for: {what}")
    if status == 404:
        return NotFoundError(text, hint="the namespace or the resource type may be missing")
    if status == 409:
        return ProviderError(text, hint="another field manager owns these fields; thrifty applies with force")
    if status == 422:
        return ConfigError(text, hint="the manifest is invalid for this cluster's API version")
    return ProviderError(text, hint="check the cluster's API server")


class KubernetesProvider:
    name: ClassVar[str] = "kubernetes"
    secret_store: ClassVar[str] = "a Kubernetes Secret"
    unsupported: ClassVar[Mapping[Feature, str]] = {
        Feature.REGIONS: "a cluster lives in one region; register one target per cluster",
    }

    def __init__(
        self,
        api_client: Any,
        target: KubernetesTarget | None = None,
        *,
        ready_timeout_s: float = 600.0,
        poll_s: float = 5.0,
    ) -> None:
        self.api = api_client
        self.target = target or KubernetesTarget()
        self.ready_timeout_s = ready_timeout_s
        self.poll_s = poll_s

    # -- HTTP boundary -----------------------------------------------------------------------

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, boot: BootConfig, dry_run: bool
    ) -> KubernetesProvider:
        """The provider the CLI builds (the kubeconfig's ``context``; no client on dry run)."""
        target = KubernetesTarget(
            namespace=options.get("namespace") or "default",
            image=boot.image,
            artifact_store_url=boot.artifact_store_url,
            s3_endpoint_url=boot.s3_endpoint_url,
            scale_to_zero=options.get("scale_to_zero") or "none",
            spot_platform=options.get("spot_platform") or "karpenter",
        )
        if dry_run:
            return cls(None, target)
        from kubernetes import config

        return cls(config.new_client_from_config(context=options.get("context")), target)  # type: ignore[no-untyped-call]

    def dry_run_document(self, spec: DeploySpec) -> Any:
        """What ``thrifty deploy --dry-run`` prints: the manifests (as YAML documents)."""
        return manifests(spec, self.target)

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            serialized = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*serialized)
            response.read()
        except HTTPError as exc:
            raise ProviderError(
                f"Kubernetes {what}: cannot reach the API server ({type(exc).__name__})",
                hint="check the kubeconfig's server address and the network",
            ) from exc
        text = response.data.decode() if response.data else ""
        if response.status >= 400:
            raise _translate(response.status, text, what)
        return response.status, (json.loads(text) if text else {})

    def _path(self, api_version: str, kind: str, name: str | None = None) -> str:
        try:
            prefix, plural = KINDS[(api_version, kind)]
        except KeyError:
            raise ConfigError(f"thrifty does not manage {api_version} {kind}") from None
        base = f"{prefix}/namespaces/{self.target.namespace}/{plural}"
        return f"{base}/{name}" if name else base

    # -- apply / prune -----------------------------------------------------------------------
    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply one object; returns the object as the API server now has it."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        try:
            _, body = self._request(
                "PATCH",
                self._path(manifest["apiVersion"], kind, name),
                f"apply {kind}/{name}",
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                body=dict(manifest),
                content_type=APPLY_CONTENT_TYPE,
            )
        except NotFoundError as exc:
            group = manifest["apiVersion"].split("/")[0]
            if group in _CRD_GROUPS:
                raise ConfigError(
                    f"the cluster has no {kind} resource type", hint=f"install {_CRD_GROUPS[group]} first"
                ) from exc
            raise
        return body

    def _owned(self, name: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(apiVersion, kind, object) of everything thrifty manages in the namespace (or one deployment)."""
        selector = f"{MANAGED_LABEL}=true"
        if name is not None:
            selector += f",{DEPLOYMENT_LABEL}={label_value(name)}"
        found = []
        for api_version, kind in KINDS:
            try:
                _, body = self._request(
                    "GET", self._path(api_version, kind), f"list {kind}", query=[("labelSelector", selector)]
                )
            except NotFoundError:
                continue  # the CRD is not installed: nothing of that kind exists
            found += [(api_version, kind, item) for item in body.get("items", [])]
        return found

    def _delete(self, api_version: str, kind: str, name: str) -> None:
        try:
            self._request(
                "DELETE",
                self._path(api_version, kind, name),
                f"delete {kind}/{name}",
                body={"propagationPolicy": "Foreground"},
            )
        except NotFoundError:
            return

    def _prune(self, name: str, keep: set[tuple[str, str, str]]) -> None:
        for api_version, kind, item in self._owned(name):
            if (api_version, kind, item["metadata"]["name"]) not in keep:
                self._delete(api_version, kind, item["metadata"]["name"])

    def _apply_all(self, spec: DeploySpec, *, hibernated: bool = False) -> None:
        objects = manifests(spec, self.target, hibernated=hibernated)
        existed = bool(self._owned(spec.name))
        # prune first: an HPA left in place while its Deployment goes to 0 would scale it back up
        keep = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects}
        if tls_enabled(spec):  # a re-render (scale, wake) has no bundle: the Secret stays as it is
            keep.add(("v1", "Secret", secret_name(spec)))
        self._prune(spec.name, keep)
        applied: list[Mapping[str, Any]] = []
        try:
            for obj in objects:
                self.apply(obj)
                applied.append(obj)
        except ThriftyError:
            if not existed:  # a first deploy failing half-way leaves nothing behind
                for done in applied:
                    self._delete(done["apiVersion"], done["kind"], done["metadata"]["name"])
            raise

    def _spec(self, name: str) -> tuple[DeploySpec, dict[str, Any]]:
        for _, _, item in self._owned(name):
            annotations = item["metadata"].get("annotations") or {}
            if SPEC_ANNOTATION in annotations and item["metadata"]["name"] == name:
                return spec_from_annotation(annotations[SPEC_ANNOTATION]), item
        raise NotFoundError(
            f"no Kubernetes deployment named {name!r} in namespace {self.target.namespace!r}",
            hint="deploy it first (`thrifty deploy … --target kubernetes`)",
        )

    # -- Provider protocol -------------------------------------------------------------------
    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        require(self, spec)
        self._apply_all(spec)
        return self._await_ready(spec.name)

    def _await_ready(self, name: str) -> DeploymentStatus:
        """Poll the status until every replica is ready (or the deadline); see the module doc."""
        status = self.status(name)
        if self.target.scale_to_zero != "none":
            return status
        deadline = time.monotonic() + self.ready_timeout_s
        delay_s = 0.05
        while status.state == "pending" and time.monotonic() + delay_s < deadline:
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, self.poll_s)
            status = self.status(name)
        return status

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        if replicas < 0:
            raise ConfigError(f"replicas={replicas} is negative", hint="pass 0 or more")
        spec, _ = self._spec(name)
        return self.deploy(
            spec.with_changes(replicas=replicas, on_demand_floor=min(spec.on_demand_floor, replicas))
        )

    def hibernate(self, name: str) -> DeploymentStatus:
        spec, _ = self._spec(name)
        self._apply_all(spec, hibernated=True)
        return self.status(name)

    def wake(self, name: str) -> DeploymentStatus:
        spec, _ = self._spec(name)
        return self.deploy(spec)

    def status(self, name: str) -> DeploymentStatus:
        owned = self._owned(name)
        if not owned:
            return DeploymentStatus(name, self.name, "deleted", 0, 0)
        spec, _ = self._spec(name)
        workloads = [item for _, kind, item in owned if kind == "Deployment"]
        running = sum(int(w.get("spec", {}).get("replicas", 1)) for w in workloads)
        ready = sum(int((w.get("status") or {}).get("readyReplicas", 0)) for w in workloads)
        hibernated = bool(workloads) and running == 0 and spec.replicas > 0
        desired = 0 if hibernated else spec.replicas
        state = "hibernated" if hibernated else "running" if ready >= desired else "pending"
        knative = [item for version, _, item in owned if version == "serving.knative.dev/v1"]
        if knative:  # Knative scales to zero on its own: ready means the route answers
            conditions = (knative[0].get("status") or {}).get("conditions") or []
            serving = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            state, ready = ("running", desired) if serving else ("pending", 0)
        return DeploymentStatus(
            name=name,
            provider=self.name,
            state=state,
            replicas_desired=desired,
            replicas_ready=ready,
            endpoint_url=_service_url(spec, self.target),
            resources=tuple(self._resource(kind, item) for _, kind, item in owned),
            details={"scale_to_zero": self.target.scale_to_zero, "spot_platform": self.target.spot_platform},
        )

    def delete(self, name: str) -> None:
        for api_version, kind, item in self._owned(name):
            self._delete(api_version, kind, item["metadata"]["name"])

    def list_managed(self) -> list[ManagedResource]:
        return [self._resource(kind, item, api_version) for api_version, kind, item in self._owned()]

    def _resource(self, kind: str, item: Mapping[str, Any], api_version: str = "") -> ManagedResource:
        from datetime import datetime

        meta = item["metadata"]
        created = meta.get("creationTimestamp")
        return ManagedResource(
            provider=self.name,
            kind=kind,
            id=f"{self.target.namespace}/{meta['name']}",
            region=self.target.namespace,
            deployment_name=(meta.get("labels") or {}).get(DEPLOYMENT_LABEL, ""),
            created_at=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
            details={"apiVersion": api_version or item.get("apiVersion", "")},
        )

    def delete_resource(self, resource: ManagedResource) -> None:
        api_version = str(resource.details.get("apiVersion", ""))
        self._delete(api_version, resource.kind, resource.id.split("/", 1)[1])


def _service_url(spec: DeploySpec, target: KubernetesTarget) -> str:
    """The Service's in-cluster URL: HTTPS on 443 when the pods serve TLS, HTTP on 80 otherwise."""
    host = f"{spec.name}.{target.namespace}.svc.cluster.local"
    return f"https://{host}" if tls_enabled(spec) else f"http://{host}"
