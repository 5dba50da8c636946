"""Azure Container Apps target: one container app per deployment, running the serving-runtime image.

Spoken as ARM REST (``Microsoft.App/containerApps``, api-version 2024-03-01):

- The app ``thrifty-<name>`` in the target's resource group and managed environment, in the
  offer's region; one container with the offer's CPU and memory (``container-apps-1vcpu-2gib`` —
  the Consumption profile's pairs only, checked before anything is sent); external ingress on the
  runtime's port.
- ``scale.minReplicas`` = the spec's ``replicas`` (the warm floor; 0 = scale to zero) and an HTTP
  scale rule at ``spec.serving["concurrency"]`` concurrent requests per replica (from the benchmark).
- ``activeRevisionsMode: Multiple``: each deploy whose container changes makes a revision
  (``revisionSuffix`` from its content) and moves all traffic to it; ``rollback`` moves the
  traffic to the previous revision.
- Every PUT/DELETE is an ARM long-running operation (``Azure-AsyncOperation`` polled until
  ``Succeeded``/``Failed``). A region without Container Apps is refused before anything is sent.
- A deploy that fails after creating the app deletes it; one that fails updating puts back the
  app as it was.
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
from thrifty.providers.gc import DEPLOYMENT_KEY, MANAGED_KEY
from thrifty.providers.rest import RestClient
from thrifty.providers.serverless import container_apps_resources, runtime_env, shape_of

API_VERSION = "2024-03-01"
FLOOR_KEY = "thrifty:warm-floor"
#: regions with Container Apps (learn.microsoft.com, "Azure Container Apps: regions", 2026-05)
CONTAINER_APPS_REGIONS = frozenset(
    [
        "australiaeast",
        "brazilsouth",
        "canadacentral",
        "canadaeast",
        "centralindia",
        "centralus",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "germanywestcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "koreacentral",
        "northcentralus",
        "northeurope",
        "norwayeast",
        "polandcentral",
        "southafricanorth",
        "southcentralus",
        "southeastasia",
        "swedencentral",
        "switzerlandnorth",
        "uaenorth",
        "uksouth",
        "ukwest",
        "westcentralus",
        "westeurope",
        "westus",
        "westus2",
        "westus3",
    ]
)
_CREDENTIAL_CODES = {
    "AuthorizationFailed",
    "AuthenticationFailed",
    "InvalidAuthenticationToken",
    "LinkedAuthorizationFailed",
}
_QUOTA_CODES = {
    "MaxNumberOfRegionalEnvironmentsInSubExceeded",
    "ContainerAppCoresQuotaExceeded",
    "QuotaExceeded",
}
_REGION_CODES = {"LocationNotAvailableForResourceType", "NoRegisteredProviderFound"}
_DONE = {"Succeeded", "Failed", "Canceled"}


@dataclass(frozen=True)
class ContainerAppsTarget:
    subscription_id: str
    resource_group: str
    environment_id: str
    base_url: str = "https://management.azure.com"
    max_replicas: int = 20
    registry_identity: str | None = None
    poll_s: float = 2.0
    operation_timeout_s: float = 600.0
    boot: BootConfig = field(default_factory=lambda: BootConfig(artifact_store_url="s3://thrifty-artifacts"))


def _translate(status: int, body: dict[str, Any], what: str) -> ThriftyError:
    error = body.get("error") or {}
    code, message = str(error.get("code", status)), str(error.get("message", ""))
    text = f"Container Apps {what} refused: {code}: {message}"
    if status in (401, 403) or code in _CREDENTIAL_CODES:
        return CredentialsError(
            text, hint="grant thrifty's identity the Contributor role on the resource group"
        )
    if code in _QUOTA_CODES:
        return QuotaExceededError(text, hint="raise the Container Apps quota of the subscription")
    if code in _REGION_CODES:
        return UnsupportedFeatureError(text, hint="deploy the plan's next candidate (another region)")
    if status == 404 or code in ("ResourceNotFound", "ContainerAppNotFound"):
        return NotFoundError(text, hint="it may have been deleted outside thrifty")
    return ProviderError(text, hint="see the ARM error code in the message")


class ContainerAppsProvider:
    name: ClassVar[str] = "azure-container-apps"
    unsupported: ClassVar[Mapping[Feature, str]] = {
        Feature.SPOT: "Container Apps has no spot market",
        Feature.GPU: "thrifty runs Container Apps on the Consumption (CPU) profile",
    }

    def __init__(self, target: ContainerAppsTarget, *, token: Callable[[], str]) -> None:
        self.target = target
        self.rest = RestClient(target.base_url, token, _translate)

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, boot: BootConfig, dry_run: bool
    ) -> ContainerAppsProvider:
        """The provider the CLI builds (DefaultAzureCredential; the managed environment from
        THRIFTY_AZURE_CONTAINERAPPS_ENVIRONMENT)."""
        import os

        fields = {
            "subscription_id": options.get("subscription_id"),
            "resource_group": options.get("resource_group"),
            "environment_id": os.environ.get("THRIFTY_AZURE_CONTAINERAPPS_ENVIRONMENT"),
        }
        missing = [k for k, v in fields.items() if not v]
        if missing and not dry_run:
            raise ConfigError(
                f"the Container Apps target needs {', '.join(missing)}",
                hint="pass --subscription-id / --resource-group and set THRIFTY_AZURE_CONTAINERAPPS_ENVIRONMENT",
            )
        target = ContainerAppsTarget(
            subscription_id=str(fields["subscription_id"] or "SUBSCRIPTION_ID"),
            resource_group=str(fields["resource_group"] or "RESOURCE_GROUP"),
            environment_id=str(fields["environment_id"] or "ENVIRONMENT_ID"),
            boot=boot,
        )
        if dry_run:
            return cls(target, token=lambda: "")
        from azure.identity import DefaultAzureCredential

        return cls(target, token=azure_token(DefaultAzureCredential()))

    @staticmethod
    def app_name(name: str) -> str:
        return f"thrifty-{name}".lower()[:32].rstrip("-")

    def _path(self, name: str) -> str:
        t = self.target
        return (
            f"/subscriptions/{t.subscription_id}/resourceGroups/{t.resource_group}"
            f"/providers/Microsoft.App/containerApps/{self.app_name(name)}"
        )

    def app_body(self, spec: DeploySpec) -> dict[str, Any]:
        """The container app resource of a spec (also what ``--dry-run`` prints)."""
        shape = shape_of(spec.instance_type, "container-apps")
        container = {
            "name": "runtime",
            "image": self.target.boot.image,
            "env": [{"name": k, "value": v} for k, v in runtime_env(spec, self.target.boot, shape).items()],
            "resources": container_apps_resources(shape),
            "probes": [
                {
                    "type": "Startup",
                    "httpGet": {"path": "/v2/health/ready", "port": self.target.boot.port},
                    "periodSeconds": 1,
                    "failureThreshold": 240,
                }
            ],
        }
        concurrency = str(int(spec.serving.get("concurrency") or 1))
        scale = {
            "minReplicas": spec.replicas,
            "maxReplicas": self.target.max_replicas,
            "rules": [{"name": "http", "http": {"metadata": {"concurrentRequests": concurrency}}}],
        }
        # a revision's suffix names its whole template (container and scale): a suffix is never reused
        template = json.dumps([container, scale], sort_keys=True).encode()
        suffix = "r" + hashlib.sha256(template).hexdigest()[:8]
        ingress = {
            "external": True,
            "targetPort": self.target.boot.port,
            "traffic": [{"latestRevision": True, "weight": 100}],
        }
        configuration: dict[str, Any] = {"activeRevisionsMode": "Multiple", "ingress": ingress}
        if self.target.registry_identity:
            server = self.target.boot.image.split("/", 1)[0]
            configuration["registries"] = [{"server": server, "identity": self.target.registry_identity}]
        return {
            "location": spec.region,
            "tags": {MANAGED_KEY: "true", DEPLOYMENT_KEY: spec.name, FLOOR_KEY: str(spec.replicas)},
            "properties": {
                "environmentId": self.target.environment_id,
                "configuration": configuration,
                "template": {"revisionSuffix": suffix, "containers": [container], "scale": scale},
            },
        }

    def dry_run_document(self, spec: DeploySpec) -> Any:
        return self.app_body(spec)

    # -- long-running operations ------------------------------------------------------------------
    def _wait(self, headers: Any, what: str) -> None:
        url = headers.get("Azure-AsyncOperation") or headers.get("Location")
        if not url:
            return
        deadline = time.monotonic() + self.target.operation_timeout_s
        while True:
            _, body, _ = self.rest.call("GET", url, what)
            status = str((body or {}).get("status", "Succeeded"))
            if status in _DONE:
                break
            if time.monotonic() > deadline:
                raise ProviderError(f"Container Apps {what}: still {status}", hint="look in the portal")
            time.sleep(self.target.poll_s)
        if status != "Succeeded":
            raise _translate(400, body or {}, what)

    def _put(self, name: str, body: dict[str, Any], what: str) -> None:
        _, _, headers = self.rest.call(
            "PUT", self._path(name), what, params={"api-version": API_VERSION}, json=body
        )
        self._wait(headers, what)

    def _get(self, name: str) -> dict[str, Any] | None:
        try:
            _, body, _ = self.rest.call(
                "GET", self._path(name), f"get {self.app_name(name)}", params={"api-version": API_VERSION}
            )
        except NotFoundError:
            return None
        found: dict[str, Any] = body
        return found

    # -- Provider protocol ------------------------------------------------------------------------
    def _checks(self, spec: DeploySpec) -> dict[str, Any]:
        require(self, spec)
        if spec.region not in CONTAINER_APPS_REGIONS:
            raise UnsupportedFeatureError(
                f"Container Apps is not offered in region {spec.region!r}",
                hint="deploy the plan's next candidate, or plan with a Container Apps region",
            )
        if not self.target.boot.image:
            raise ConfigError(
                "the Container Apps target names no runtime image", hint="thrifty image build --push <ACR>"
            )
        return self.app_body(spec)

    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        body = self._checks(spec)
        existing = self._get(spec.name)
        if existing is not None and _same(existing, body):
            return self.status(spec.name)
        try:
            self._put(spec.name, body, f"put {self.app_name(spec.name)} in {spec.region}")
        except ThriftyError:
            self._undo(spec.name, existing)
            raise
        return self.status(spec.name)

    def _undo(self, name: str, existing: dict[str, Any] | None) -> None:
        if existing is None:
            self.delete(name)
            return
        restore: dict[str, Any] = {
            k: existing[k] for k in ("location", "tags", "properties") if k in existing
        }
        self._put(name, restore, f"restore {self.app_name(name)}")

    def rollback(self, name: str) -> DeploymentStatus:
        """Move all traffic to the revision created before the one serving now."""
        app = self._get(name)
        if app is None:
            raise NotFoundError(f"no Container Apps deployment named {name!r}", hint="deploy it first")
        _, body, _ = self.rest.call(
            "GET", f"{self._path(name)}/revisions", "list revisions", params={"api-version": API_VERSION}
        )
        revisions = sorted(body.get("value", []), key=lambda r: r["properties"].get("createdTime", ""))
        names = [r["name"] for r in revisions]
        current = _serving_revision(app)
        older = names[: names.index(current)] if current in names else []
        if not older:
            raise NotFoundError(
                f"container app {self.app_name(name)} has no revision before {current}",
                hint="nothing to roll back to",
            )
        app["properties"]["configuration"]["ingress"]["traffic"] = [
            {"revisionName": older[-1], "weight": 100}
        ]
        self._put(name, _writable(app), f"route traffic to {older[-1]}")
        return self.status(name)

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        """Set the warm floor (min replicas); scaling above it is the HTTP rule's."""
        if replicas < 0:
            raise ConfigError(f"replicas={replicas} is negative", hint="pass 0 or more")
        app = self._get(name)
        if app is None:
            raise NotFoundError(f"no Container Apps deployment named {name!r}", hint="deploy it first")
        app["properties"]["template"]["scale"]["minReplicas"] = replicas
        app["properties"]["template"].pop("revisionSuffix", None)  # a new revision: Azure names it
        app["tags"] = {**app.get("tags", {}), FLOOR_KEY: str(replicas)}
        self._put(name, _writable(app), f"scale {self.app_name(name)}")
        return self.status(name)

    def hibernate(self, name: str) -> DeploymentStatus:
        return self.scale(name, 0)

    def wake(self, name: str) -> DeploymentStatus:
        return self.scale(name, 1)

    def status(self, name: str) -> DeploymentStatus:
        app = self._get(name)
        if app is None:
            return DeploymentStatus(name, self.name, "deleted", 0, 0)
        props = app["properties"]
        ready = props.get("provisioningState") == "Succeeded"
        floor = int(props["template"]["scale"].get("minReplicas", 0))
        fqdn = props.get("configuration", {}).get("ingress", {}).get("fqdn")
        return DeploymentStatus(
            name=name,
            provider=self.name,
            state="running" if ready else "pending",
            replicas_desired=floor,
            replicas_ready=floor if ready else 0,
            endpoint_url=f"https://{fqdn}" if fqdn else None,
            resources=(self._resource(app),),
            details={"revision": _serving_revision(app), "warm_floor": floor},
        )

    def delete(self, name: str) -> None:
        what = f"delete {self.app_name(name)}"
        try:
            _, _, headers = self.rest.call(
                "DELETE", self._path(name), what, params={"api-version": API_VERSION}
            )
        except NotFoundError:
            return
        self._wait(headers, what)

    def list_managed(self) -> list[ManagedResource]:
        t = self.target
        path = f"/subscriptions/{t.subscription_id}/resourceGroups/{t.resource_group}/providers/Microsoft.App/containerApps"
        _, body, _ = self.rest.call("GET", path, "list container apps", params={"api-version": API_VERSION})
        apps = (body or {}).get("value", [])
        return [self._resource(a) for a in apps if a.get("tags", {}).get(MANAGED_KEY) == "true"]

    def _resource(self, app: Mapping[str, Any]) -> ManagedResource:
        return ManagedResource(
            provider=self.name,
            kind="containerApp",
            id=str(app["name"]),
            region=str(app.get("location", "")),
            deployment_name=app.get("tags", {}).get(DEPLOYMENT_KEY, ""),
            details={"revision": _serving_revision(app)},
        )

    def delete_resource(self, resource: ManagedResource) -> None:
        self.delete(resource.id.removeprefix("thrifty-"))


def _serving_revision(app: Mapping[str, Any]) -> str | None:
    props = app.get("properties", {})
    for entry in props.get("configuration", {}).get("ingress", {}).get("traffic", []):
        if entry.get("weight") and entry.get("revisionName") and not entry.get("latestRevision"):
            return str(entry["revisionName"])
    latest = props.get("latestReadyRevisionName")
    return str(latest) if latest else None


def _writable(app: Mapping[str, Any]) -> dict[str, Any]:
    """What a PUT takes back of a GET (read-only fields dropped)."""
    props = {
        k: v for k, v in app["properties"].items() if k in ("environmentId", "configuration", "template")
    }
    return {"location": app["location"], "tags": app.get("tags", {}), "properties": props}


def _same(existing: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    return bool(_writable(existing) == body)


def azure_token(credential: Any) -> Callable[[], str]:
    """Bearer tokens for ARM from an azure-identity credential."""

    def token() -> str:
        return str(credential.get_token("https://management.azure.com/.default").token)

    return token
