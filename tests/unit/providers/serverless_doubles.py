"""Replayed control planes of the serverless targets: Cloud Run Admin API v2 and ARM's
Microsoft.App/containerApps, plus Lambda's provisioned concurrency (which moto lacks).

They refuse what the real services refuse, with the real error shapes: regions without the
service, CPU/memory pairs not sold, callers without permission, a revision name reused for a
different template; every mutation is a long-running operation that reads pending for some polls.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from typing import Any

from tests.unit.providers.replay import ReplayServer, Request

TOKEN = "test-token"
DENIED = "denied-token"

# -- Cloud Run ------------------------------------------------------------------------------------
#: the regions this double sells Cloud Run in (a subset of the real list, on purpose)
RUN_REGIONS = {"us-central1", "europe-west4", "us-east1"}
RUN_MAX_MEMORY_MIB = {"1": 4096, "2": 8192, "4": 16384, "6": 24576, "8": 32768}


def _google_error(code: int, status: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": {"code": code, "message": message, "status": status}}


def _mib(text: str) -> float:
    for unit, factor in (("Gi", 1024.0), ("Mi", 1.0), ("G", 1000**3 / 2**20), ("M", 1000**2 / 2**20)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text) / 2**20


class CloudRunApi:
    """``run.googleapis.com/v2`` for one project, answering over a ReplayServer."""

    def __init__(self, server: ReplayServer, project: str = "proj") -> None:
        self.server = server
        self.project = project
        self.services: dict[str, dict[str, Any]] = {}
        self.revisions: dict[str, dict[str, Any]] = {}
        self.ops: dict[str, dict[str, Any]] = {}
        self.polls_to_done = 2
        self.ids = itertools.count(1)
        base = f"/v2/projects/{project}/locations/"
        server.route("GET", base, self.get)
        server.route("POST", base, self.create)
        server.route("PATCH", base, self.patch)
        server.route("DELETE", base, self.delete)

    def _auth(self, req: Request, permission: str, resource: str) -> tuple[int, dict[str, Any]] | None:
        token = str(req.headers.get("Authorization", "")).removeprefix("Bearer ")
        if token == TOKEN:
            return None
        return _google_error(
            403,
            "PERMISSION_DENIED",
            f"Permission '{permission}' denied on resource '{resource}' (or resource may not exist).",
        )

    def _op(self, region: str, done: Any, response: Any) -> tuple[int, dict[str, Any]]:
        name = f"projects/{self.project}/locations/{region}/operations/op-{next(self.ids)}"
        self.ops[name] = {"polls": 0, "done": done, "response": response}
        return 200, {
            "name": name,
            "done": False,
            "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service"},
        }

    def _refusal(self, region: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if region not in RUN_REGIONS:
            return _google_error(
                400, "INVALID_ARGUMENT", f"Location {region} is not available for this project."
            )
        for i, container in enumerate(body.get("template", {}).get("containers", [])):
            limits = container.get("resources", {}).get("limits", {})
            cpu, memory = str(limits.get("cpu", "1")), _mib(str(limits.get("memory", "512Mi")))
            top = RUN_MAX_MEMORY_MIB.get(cpu)
            if top is None:
                return _google_error(
                    400,
                    "INVALID_ARGUMENT",
                    f"spec.template.spec.containers[{i}].resources.limits.cpu: Invalid value specified for cpu. Must be one of 1, 2, 4, 6, 8 or a value below 1.",
                )
            if not 128 <= memory <= top:
                return _google_error(
                    400,
                    "INVALID_ARGUMENT",
                    f"spec.template.spec.containers[{i}].resources.limits.memory: Invalid value specified for container memory. For {float(cpu)} CPU, memory must be between 128Mi and {top // 1024}Gi inclusive.",
                )
        return None

    def _revision(self, service: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """Record the template's revision; a name reused with another template is refused."""
        template = service["template"]
        name = template.get("revision") or f"{service['name'].rsplit('/', 1)[1]}-{next(self.ids):05d}-abc"
        full = f"{service['name']}/revisions/{name}"
        known = self.revisions.get(full)
        if known is not None and known["template"] != template:
            return _google_error(
                409, "ALREADY_EXISTS", f"Revision named '{name}' with different configuration already exists."
            )
        if known is None:
            self.revisions[full] = {
                "name": full,
                "template": copy.deepcopy(template),
                "createTime": f"2026-12-05T10:{next(self.ids):02d}:00Z",
            }
        service["latestCreatedRevision"] = full
        return None

    def create(self, req: Request) -> tuple[Any, ...]:
        region = req.path.split("/")[5]
        service_id = req.query["serviceId"][0]
        name = f"projects/{self.project}/locations/{region}/services/{service_id}"
        denied = self._auth(req, "run.services.create", name)
        refused = denied or self._refusal(region, req.body)
        if refused:
            return refused
        if name in self.services:
            return _google_error(409, "ALREADY_EXISTS", f"Resource '{service_id}' already exists.")
        service = {**req.body, "name": name, "uri": f"https://{service_id}-x7k2q-uc.a.run.app", "generation": "1",
                   "reconciling": True, "terminalCondition": {"type": "Ready", "state": "CONDITION_PENDING"}}  # fmt: skip
        service.setdefault("traffic", [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}])
        clash = self._revision(service)
        if clash:
            return clash
        self.services[name] = service
        return self._op(region, lambda: self._ready(name), service)

    def _ready(self, name: str) -> None:
        service = self.services[name]
        service["reconciling"] = False
        service["terminalCondition"] = {"type": "Ready", "state": "CONDITION_SUCCEEDED"}
        latest = service["latestCreatedRevision"].rsplit("/", 1)[1]
        service["latestReadyRevision"] = service["latestCreatedRevision"]
        statuses = []
        for entry in service["traffic"]:
            revision = entry.get("revision") or latest
            statuses.append({"type": entry["type"], "revision": revision, "percent": entry["percent"]})
        service["trafficStatuses"] = statuses

    def patch(self, req: Request) -> tuple[Any, ...]:
        name = req.path.removeprefix("/v2/")
        denied = self._auth(req, "run.services.update", name)
        if denied:
            return denied
        service = self.services.get(name)
        if service is None:
            return _google_error(404, "NOT_FOUND", f"Resource '{name}' was not found")
        refused = self._refusal(name.split("/")[3], {**service, **req.body})
        if refused:
            return refused
        updated = {**copy.deepcopy(service), **req.body}
        if "template" in req.body:
            clash = self._revision(updated)
            if clash:
                return clash
        updated["terminalCondition"] = {"type": "Ready", "state": "CONDITION_PENDING"}
        self.services[name] = updated
        return self._op(name.split("/")[3], lambda: self._ready(name), updated)

    def delete(self, req: Request) -> tuple[Any, ...]:
        name = req.path.removeprefix("/v2/")
        denied = self._auth(req, "run.services.delete", name)
        if denied:
            return denied
        if name not in self.services:
            return _google_error(404, "NOT_FOUND", f"Resource '{name}' was not found")

        def gone() -> None:
            self.services.pop(name, None)
            for key in [k for k in self.revisions if k.startswith(name + "/")]:
                del self.revisions[key]

        return self._op(name.split("/")[3], gone, self.services[name])

    def get(self, req: Request) -> tuple[Any, ...]:
        path = req.path.removeprefix("/v2/")
        if "/operations/" in path:
            return self._poll(path)
        if path.endswith("/revisions"):
            service = path.removesuffix("/revisions")
            found = [r for k, r in self.revisions.items() if k.startswith(service + "/")]
            return 200, {"revisions": found}
        if path.endswith("/services"):
            region = path.split("/")[3]
            found = [s for s in self.services.values() if region == "-" or s["name"].split("/")[3] == region]
            return 200, {"services": found}
        if path in self.services:
            return 200, self.services[path]
        return _google_error(404, "NOT_FOUND", f"Resource '{path}' was not found")

    def _poll(self, name: str) -> tuple[Any, ...]:
        op = self.ops[name]
        op["polls"] += 1
        if op["polls"] < self.polls_to_done:
            return 200, {"name": name, "done": False}
        if op["done"] is not None:
            op["done"]()
            op["done"] = None
        return 200, {"name": name, "done": True, "response": op["response"]}


# -- Azure Container Apps -------------------------------------------------------------------------
APPS_REGIONS = {"eastus", "westeurope", "northeurope"}
APPS_PAIRS = {(q / 4, f"{q / 2:g}Gi") for q in range(1, 17)}
OPS = "/providers/Microsoft.App/locations/eastus/containerappOperationStatuses"


def _arm_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


class ContainerAppsApi:
    """ARM's ``Microsoft.App/containerApps`` in one resource group, answering over a ReplayServer."""

    def __init__(self, server: ReplayServer, subscription: str = "sub", group: str = "rg") -> None:
        self.server = server
        self.base = (
            f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.App/containerApps"
        )
        self.apps: dict[str, dict[str, Any]] = {}
        self.revisions: dict[str, list[dict[str, Any]]] = {}
        self.ops: dict[str, dict[str, Any]] = {}
        self.polls_to_done = 2
        self.ids = itertools.count(1)
        server.route("GET", OPS, self.poll)
        server.route("GET", self.base, self.get)
        server.route("PUT", self.base, self.put)
        server.route("DELETE", self.base, self.delete)

    def _denied(self, req: Request, action: str) -> tuple[int, dict[str, Any]] | None:
        assert req.query.get("api-version"), "ARM calls always carry api-version"
        if str(req.headers.get("Authorization", "")) == f"Bearer {TOKEN}":
            return None
        return _arm_error(
            403,
            "AuthorizationFailed",
            f"The client 'thrifty' with object id '00000000' does not have authorization to perform action '{action}' over scope '{req.path}' or the scope is invalid.",
        )

    def _lro(self, status: int, body: Any, done: Any) -> tuple[Any, ...]:
        op = f"op-{next(self.ids)}"
        self.ops[op] = {"polls": 0, "done": done}
        url = f"{self.server.url}{OPS}/{op}?api-version=2024-03-01"
        return status, body, {"Azure-AsyncOperation": url}

    def poll(self, req: Request) -> tuple[Any, ...]:
        op = self.ops[req.path.rsplit("/", 1)[1]]
        op["polls"] += 1
        if op["polls"] < self.polls_to_done:
            return 200, {"status": "InProgress"}
        if op["done"] is not None:
            op["done"]()
            op["done"] = None
        return 200, {"status": "Succeeded"}

    def _refusal(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        region = body.get("location", "")
        if region not in APPS_REGIONS:
            listed = ", ".join(sorted(APPS_REGIONS))
            return _arm_error(
                400,
                "LocationNotAvailableForResourceType",
                f"The provided location '{region}' is not available for resource type 'Microsoft.App/containerApps'. List of available regions for the resource type is '{listed}'.",
            )
        for container in body["properties"]["template"]["containers"]:
            resources = container.get("resources", {})
            pair = (float(resources.get("cpu", 0.5)), str(resources.get("memory", "1Gi")))
            if pair not in APPS_PAIRS:
                return _arm_error(
                    400,
                    "ContainerAppInvalidResourceTotal",
                    f"The total requested CPU and memory resources for this application (CPU: {pair[0]:g}, memory: {pair[1]}) is invalid. Total CPU and memory for all containers defined in a Container App must add up to one of the following CPU - Memory combinations: [cpu: 0.25, memory: 0.5Gi]; [cpu: 0.5, memory: 1.0Gi]; [cpu: 0.75, memory: 1.5Gi]; [cpu: 1.0, memory: 2.0Gi]; [cpu: 1.25, memory: 2.5Gi]; [cpu: 1.5, memory: 3.0Gi]; [cpu: 1.75, memory: 3.5Gi]; [cpu: 2.0, memory: 4.0Gi]",
                )
        return None

    def put(self, req: Request) -> tuple[Any, ...]:
        name = req.path.removeprefix(self.base + "/")
        refused = self._denied(req, "Microsoft.App/containerApps/write") or self._refusal(req.body)
        if refused:
            return refused
        existed = name in self.apps
        app = copy.deepcopy(req.body) | {"name": name, "id": req.path, "type": "Microsoft.App/containerApps"}
        props = app["properties"]
        props["provisioningState"] = "InProgress"
        props["configuration"]["ingress"]["fqdn"] = (
            f"{name}.kindhill-1a2b3c.{app['location']}.azurecontainerapps.io"
        )
        previous = self.apps.get(name, {}).get("properties", {})
        props["latestReadyRevisionName"] = previous.get("latestReadyRevisionName")
        self.apps[name] = app
        return self._lro(200 if existed else 201, app, lambda: self._ready(name))

    def _ready(self, name: str) -> None:
        app = self.apps[name]
        props = app["properties"]
        revision = f"{name}--{props['template'].get('revisionSuffix') or next(self.ids)}"
        known = self.revisions.setdefault(name, [])
        if revision not in [r["name"] for r in known]:
            known.append(
                {
                    "name": revision,
                    "properties": {
                        "createdTime": f"2026-12-05T10:{next(self.ids):02d}:00Z",
                        "template": copy.deepcopy(props["template"]),
                    },
                }
            )
        props["provisioningState"] = "Succeeded"
        props["latestRevisionName"] = props["latestReadyRevisionName"] = revision

    def get(self, req: Request) -> tuple[Any, ...]:
        denied = self._denied(req, "Microsoft.App/containerApps/read")
        if denied:
            return denied
        rest = req.path.removeprefix(self.base).strip("/")
        if not rest:
            return 200, {"value": list(self.apps.values())}
        name, _, sub = rest.partition("/")
        if name not in self.apps:
            return _arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.App/containerApps/{name}' under resource group 'rg' was not found.",
            )
        if sub == "revisions":
            return 200, {"value": self.revisions.get(name, [])}
        return 200, self.apps[name]

    def delete(self, req: Request) -> tuple[Any, ...]:
        denied = self._denied(req, "Microsoft.App/containerApps/delete")
        if denied:
            return denied
        name = req.path.removeprefix(self.base + "/")
        if name not in self.apps:
            return 204, None

        def gone() -> None:
            self.apps.pop(name, None)
            self.revisions.pop(name, None)

        return self._lro(202, None, gone)


# -- Lambda provisioned concurrency (moto lacks it) ---------------------------------------------
@dataclass
class Accepted:
    """The HTTP status botocore reads from a ``before-call`` answer."""

    status_code: int


class ProvisionedConcurrency:
    """Lambda's provisioned-concurrency calls, which moto does not implement, answered as AWS does:
    only on a published version or alias that exists, ≥ 1, removal of a config that exists."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.configs: dict[tuple[str, str], int] = {}
        self.refuse_with: str | None = None
        client.meta.events.register("before-call.lambda.PutProvisionedConcurrencyConfig", self.put)
        client.meta.events.register("before-call.lambda.DeleteProvisionedConcurrencyConfig", self.delete)

    @staticmethod
    def _error(code: str, message: str, operation: str) -> Exception:
        from botocore.exceptions import ClientError

        return ClientError({"Error": {"Code": code, "Message": message}}, operation)  # type: ignore[arg-type]

    @staticmethod
    def _target(request: dict[str, Any]) -> tuple[str, str]:
        """(function, qualifier) of a serialized request (``before-call`` sees it serialized)."""
        return request["url_path"].split("/")[3], request["query_string"]["Qualifier"]

    def put(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        (name, qualifier), body = self._target(params), json.loads(params["body"])
        operation = "PutProvisionedConcurrencyConfig"
        if self.refuse_with:
            raise self._error(self.refuse_with, "Account concurrency limit exceeded", operation)
        if qualifier == "$LATEST":
            raise self._error(
                "InvalidParameterValueException",
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
                operation,
            )
        self.client.get_alias(FunctionName=name, Name=qualifier)  # ResourceNotFoundException as AWS
        if body["ProvisionedConcurrentExecutions"] < 1:
            raise self._error(
                "InvalidParameterValueException", "ProvisionedConcurrentExecutions must be >= 1", operation
            )
        self.configs[(name, qualifier)] = body["ProvisionedConcurrentExecutions"]
        return Accepted(202), {
            "RequestedProvisionedConcurrentExecutions": self.configs[(name, qualifier)],
            "Status": "IN_PROGRESS",
        }

    def delete(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        key = self._target(params)
        if key not in self.configs:
            raise self._error(
                "ResourceNotFoundException",
                "No Provisioned Concurrency Config found for this function",
                "DeleteProvisionedConcurrencyConfig",
            )
        del self.configs[key]
        return Accepted(204), {}
