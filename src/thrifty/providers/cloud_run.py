"""Google Cloud Run target: one service per deployment, running the serving-runtime image.

Spoken as the Cloud Run Admin API v2 over REST (``run.googleapis.com/v2``):

- The service ``thrifty-<name>`` in the offer's region; one container (the runtime image by
  digest) with the offer's CPU and memory as limits (``cloud-run-1vcpu-2gib``: 1 vCPU, 2 GiB —
  checked against what Cloud Run sells before anything is sent), ``PORT`` set by the platform,
  CPU only during requests, startup CPU boost on.
- the service-level ``scaling.minInstanceCount`` = the spec's ``replicas`` (the warm floor; 0 =
  scale to zero; changing it makes no revision),
  ``maxInstanceRequestConcurrency`` from the benchmark (``spec.serving["concurrency"]``).
- Every deploy whose container changes names a new revision (``thrifty-<name>-<digest>``) and
  moves all traffic to it once ready; ``rollback`` moves traffic to the previous revision.
- Every mutation returns a long-running operation polled until ``done``; an operation's error is
  translated like an HTTP error. A region without Cloud Run is refused before anything is sent.
- Auth: ``public=True`` turns off the invoker IAM check (``invokerIamDisabled``); the runtime then
  checks the deployment's bearer token by digest, as every target does. ``public=False`` keeps
  Cloud Run's IAM (callers send a Google ID token).
- A deploy that fails after creating the service deletes it; one that fails updating moves the
  traffic back to the revision that served before.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from thrifty.errors import (
    ConfigError,
    CredentialsError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    ThriftyError,
    UnsupportedFeatureError,
)
from thrifty.providers.base import DeploymentStatus, DeploySpec, Feature, ManagedResource, require
from thrifty.providers.boot import BootConfig
from thrifty.providers.gc import DEPLOYMENT_LABEL, MANAGED_LABEL, label_value
from thrifty.providers.rest import RestClient
from thrifty.providers.serverless import cloud_run_limits, runtime_env, shape_of

FLOOR_LABEL = "thrifty-warm-floor"
#: regions Cloud Run serves (cloud.google.com/run/docs/locations, 2026-05)
CLOUD_RUN_REGIONS = frozenset(
    [
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    ]
)


@dataclass(frozen=True)
class CloudRunTarget:
    project: str
    base_url: str = "https://run.googleapis.com"
    service_account_email: str | None = None
    public: bool = True
    max_instances: int = 20
    poll_s: float = 2.0
    operation_timeout_s: float = 600.0
    boot: BootConfig = field(default_factory=lambda: BootConfig(artifact_store_url="s3://thrifty-artifacts"))


def _translate(status: int, body: dict[str, Any], what: str) -> ThriftyError:
    error = body.get("error") or {}
    code, message = str(error.get("status", status)), str(error.get("message", ""))
    text = f"Cloud Run {what} refused: {code}: {message}"
    if status in (401, 403) or code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return CredentialsError(
            text, hint="grant the service account roles/run.admin and roles/iam.serviceAccountUser"
        )
    if status == 429 or code == "RESOURCE_EXHAUSTED":
        return QuotaExceededError(text, hint="raise the Cloud Run quota (IAM & Admin → Quotas)")
    if "Location" in message and ("not available" in message or "not supported" in message):
        return UnsupportedFeatureError(text, hint="deploy the plan's next candidate (another region)")
    if status == 404 or code == "NOT_FOUND":
        return NotFoundError(text, hint="it may have been deleted outside thrifty")
    return ProviderError(text, hint="see the Cloud Run error status in the message")


class CloudRunProvider:
    name: ClassVar[str] = "gcp-cloud-run"
    unsupported: ClassVar[Mapping[Feature, str]] = {
        Feature.SPOT: "Cloud Run has no spot market",
        Feature.GPU: "thrifty runs Cloud Run on CPUs only",
    }

    def __init__(self, target: CloudRunTarget, *, token: Callable[[], str]) -> None:
        self.target = target
        self.rest = RestClient(target.base_url, token, _translate)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, boot: BootConfig, dry_run: bool) -> CloudRunProvider:
        if not options.get("project") and not dry_run:
            raise ConfigError("no GCP project", hint="pass --project or set THRIFTY_GCP_PROJECT")
        target = CloudRunTarget(project=options.get("project") or "PROJECT", boot=boot)
        return cls(target, token=(lambda: "") if dry_run else google_token())

    # -- paths and bodies -------------------------------------------------------------------------
    @staticmethod
    def service_id(name: str) -> str:
        return f"thrifty-{label_value(name)}"[:49].rstrip("-")

    def _parent(self, region: str) -> str:
        return f"/v2/projects/{self.target.project}/locations/{region}"

    def _path(self, region: str, name: str) -> str:
        return f"{self._parent(region)}/services/{self.service_id(name)}"

    def service_body(self, spec: DeploySpec) -> dict[str, Any]:
        """The Service resource of a spec (also what ``--dry-run`` prints)."""
        shape = shape_of(spec.instance_type, "cloud-run")
        container = {
            "image": self.target.boot.image,
            "env": [{"name": k, "value": v} for k, v in runtime_env(spec, self.target.boot, shape).items()],
            "resources": {"limits": cloud_run_limits(shape), "cpuIdle": True, "startupCpuBoost": True},
            "ports": [{"containerPort": self.target.boot.port}],
            "startupProbe": {
                "httpGet": {"path": "/v2/health/ready"},
                "periodSeconds": 1,
                "failureThreshold": 240,
            },
        }
        digest = hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:8]
        template: dict[str, Any] = {
            "revision": f"{self.service_id(spec.name)}-{digest}",
            "scaling": {"maxInstanceCount": self.target.max_instances},
            "maxInstanceRequestConcurrency": int(spec.serving.get("concurrency") or 1),
            "containers": [container],
        }
        if self.target.service_account_email:
            template["serviceAccount"] = self.target.service_account_email
        labels = {
            MANAGED_LABEL: "true",
            DEPLOYMENT_LABEL: label_value(spec.name),
            FLOOR_LABEL: str(spec.replicas),
        }
        return {
            "labels": labels,
            "template": template,
            "scaling": {"minInstanceCount": spec.replicas},  # service-level: no new revision
            "invokerIamDisabled": self.target.public,
        }

    def dry_run_document(self, spec: DeploySpec) -> Any:
        return self.service_body(spec)

    # -- operations -------------------------------------------------------------------------------
    def _wait(self, operation: dict[str, Any], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.target.operation_timeout_s
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"Cloud Run {what}: operation {operation.get('name')} still running",
                    hint="look in the console",
                )
            time.sleep(self.target.poll_s)
            _, operation, _ = self.rest.call("GET", f"/v2/{operation['name']}", what)
        if operation.get("error"):
            error = operation["error"]
            status = {3: 400, 5: 404, 7: 403, 8: 429}.get(int(error.get("code", 2)), 500)
            raise _translate(status, {"error": {"message": error.get("message", ""), "status": ""}}, what)
        response: dict[str, Any] = operation.get("response") or {}
        return response

    def _get(self, region: str, name: str) -> dict[str, Any] | None:
        try:
            _, body, _ = self.rest.call("GET", self._path(region, name), f"get {self.service_id(name)}")
        except NotFoundError:
            return None
        found: dict[str, Any] = body
        return found

    def _mutate(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        _, operation, _ = self.rest.call(method, path, what, **kwargs)
        return self._wait(operation, what)

    # -- Provider protocol ------------------------------------------------------------------------
    def _checks(self, spec: DeploySpec) -> dict[str, Any]:
        require(self, spec)
        if spec.region not in CLOUD_RUN_REGIONS:
            raise UnsupportedFeatureError(
                f"Cloud Run is not offered in region {spec.region!r}",
                hint="deploy the plan's next candidate, or plan with a Cloud Run region",
            )
        if not self.target.boot.image:
            raise ConfigError(
                "the Cloud Run target names no runtime image",
                hint="thrifty image build --push <Artifact Registry>",
            )
        return self.service_body(spec)

    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        body = self._checks(spec)
        existing = self._get(spec.region, spec.name)
        if existing is None:
            self._create(spec, body)
        elif _changed(existing, body, spec.replicas):
            try:
                self._update(spec, body)
            except ThriftyError:
                self._undo(spec, existing)
                raise
        return self.status(spec.name, spec.region)

    def _create(self, spec: DeploySpec, body: dict[str, Any]) -> None:
        """Create the service; once Cloud Run accepted it, a failure deletes it again."""
        what = f"create {self.service_id(spec.name)} in {spec.region}"
        params = {"serviceId": self.service_id(spec.name)}
        _, operation, _ = self.rest.call(
            "POST", f"{self._parent(spec.region)}/services", what, params=params, json=body
        )
        try:
            self._wait(operation, what)
        except ThriftyError:
            self._delete(spec.region, spec.name)
            raise

    def _update(self, spec: DeploySpec, body: dict[str, Any]) -> None:
        revision = body["template"]["revision"]
        body = body | {
            "traffic": [
                {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision, "percent": 100}
            ]
        }
        self._mutate(
            "PATCH", self._path(spec.region, spec.name), f"update {self.service_id(spec.name)}", json=body
        )

    def _undo(self, spec: DeploySpec, existing: dict[str, Any]) -> None:
        serving = _serving_revision(existing)
        if serving:
            self._route(spec.region, spec.name, serving)

    def _route(self, region: str, name: str, revision: str) -> None:
        traffic = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": revision, "percent": 100}]
        self._mutate(
            "PATCH",
            self._path(region, name),
            f"route traffic to {revision}",
            params={"updateMask": "traffic"},
            json={"traffic": traffic},
        )

    def _region_of(self, name: str) -> str:
        for resource in self.list_managed():
            if resource.deployment_name == label_value(name):
                return resource.region
        raise NotFoundError(
            f"no Cloud Run deployment named {name!r} in project {self.target.project}", hint="deploy it first"
        )

    def rollback(self, name: str) -> DeploymentStatus:
        """Move all traffic to the revision created before the one serving now."""
        region = self._region_of(name)
        service = self._get(region, name) or {}
        _, body, _ = self.rest.call("GET", f"{self._path(region, name)}/revisions", "list revisions")
        revisions = sorted(body.get("revisions", []), key=lambda r: r.get("createTime", ""))
        names = [r["name"].rsplit("/", 1)[-1] for r in revisions]
        current = _serving_revision(service)
        older = names[: names.index(current)] if current in names else []
        if not older:
            raise NotFoundError(
                f"Cloud Run service {self.service_id(name)} has no revision before {current}",
                hint="nothing to roll back to",
            )
        self._route(region, name, older[-1])
        return self.status(name, region)

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        """Set the warm floor (min instances); scaling above it is Cloud Run's own."""
        if replicas < 0:
            raise ConfigError(f"replicas={replicas} is negative", hint="pass 0 or more")
        region = self._region_of(name)
        service = self._get(region, name) or {}
        body = {
            "scaling": {"minInstanceCount": replicas},
            "labels": {**service.get("labels", {}), FLOOR_LABEL: str(replicas)},
        }
        what = f"scale {self.service_id(name)}"
        self._mutate(
            "PATCH", self._path(region, name), what, params={"updateMask": "scaling,labels"}, json=body
        )
        return self.status(name, region)

    def hibernate(self, name: str) -> DeploymentStatus:
        return self.scale(name, 0)

    def wake(self, name: str) -> DeploymentStatus:
        return self.scale(name, 1)

    def status(self, name: str, region: str | None = None) -> DeploymentStatus:
        try:
            region = region or self._region_of(name)
        except NotFoundError:
            return DeploymentStatus(name, self.name, "deleted", 0, 0)
        service = self._get(region, name)
        if service is None:
            return DeploymentStatus(name, self.name, "deleted", 0, 0)
        ready = (service.get("terminalCondition") or {}).get("state") == "CONDITION_SUCCEEDED"
        floor = _floor(service)
        return DeploymentStatus(
            name=name,
            provider=self.name,
            state="running" if ready else "pending",
            replicas_desired=floor,
            replicas_ready=floor if ready else 0,
            endpoint_url=service.get("uri"),
            resources=(self._resource(region, service),),
            details={"revision": _serving_revision(service), "warm_floor": floor},
        )

    def _delete(self, region: str, name: str) -> None:
        try:
            self._mutate("DELETE", self._path(region, name), f"delete {self.service_id(name)}")
        except NotFoundError:
            return

    def delete(self, name: str) -> None:
        try:
            self._delete(self._region_of(name), name)
        except NotFoundError:
            return

    def list_managed(self) -> list[ManagedResource]:
        _, body, _ = self.rest.call(
            "GET", f"/v2/projects/{self.target.project}/locations/-/services", "list services"
        )
        services = (body or {}).get("services", [])
        return [
            self._resource(s["name"].split("/")[3], s)
            for s in services
            if s.get("labels", {}).get(MANAGED_LABEL) == "true"
        ]

    def _resource(self, region: str, service: Mapping[str, Any]) -> ManagedResource:
        return ManagedResource(
            provider=self.name,
            kind="service",
            id=str(service["name"]).rsplit("/", 1)[-1],
            region=region,
            deployment_name=service.get("labels", {}).get(DEPLOYMENT_LABEL, ""),
            details={"revision": _serving_revision(service)},
        )

    def delete_resource(self, resource: ManagedResource) -> None:
        what = f"delete {resource.id}"
        try:
            self._mutate("DELETE", f"{self._parent(resource.region)}/services/{resource.id}", what)
        except NotFoundError:
            return


def _changed(existing: Mapping[str, Any], body: Mapping[str, Any], floor: int) -> bool:
    return bool(
        existing.get("template", {}).get("revision") != body["template"]["revision"]
        or _floor(existing) != floor
    )


def _floor(service: Mapping[str, Any]) -> int:
    return int(service.get("scaling", {}).get("minInstanceCount", 0))


def _serving_revision(service: Mapping[str, Any]) -> str | None:
    """The revision taking the traffic (the latest ready one when traffic follows the latest)."""
    for entry in service.get("trafficStatuses") or service.get("traffic") or []:
        if entry.get("percent") and entry.get("revision"):
            return str(entry["revision"])
    latest = service.get("latestReadyRevision")
    return str(latest).rsplit("/", 1)[-1] if latest else None


def google_token() -> Callable[[], str]:
    """Bearer tokens from Application Default Credentials, refreshed when stale."""

    def token() -> str:
        import google.auth
        import google.auth.transport.requests

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
        return str(credentials.token)

    return token
