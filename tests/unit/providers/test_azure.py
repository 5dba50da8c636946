"""Azure provider through azure-mgmt-compute, base_url pointed at a local ARM replay server.

REPLAYED: there is no Azure here. ``FakeArm`` answers with real-shaped ARM JSON, including
long-running operations (201/202 + ``Azure-AsyncOperation`` → ``InProgress`` → ``Succeeded`` /
``Failed``) and the error bodies ARM sends (QuotaExceeded, SkuNotAvailable, AllocationFailed,
AuthorizationFailed). Like ARM it refuses a VM size its region does not sell (409 SkuNotAvailable;
the regions come from the shared price snapshot) and a size that does not exist anywhere (400
InvalidParameter, target vmSize); a VM reads ``provisioningState: Creating`` (power state
``starting``) until its create operation has been polled to its end (``polls_to_done``), a
deallocate or delete likewise takes effect only then; a public IP exists only for a NIC whose
configuration asked for one (``publicIPAddressConfiguration``), and goes with its VM. The credential is ``StaticToken`` (a class with ``get_token``); plain http
on 127.0.0.1 works because the provider passes ``enforce_https=False`` for loopback base URLs
only (azure-core's bearer policy refuses http otherwise).

Networking (``Microsoft.Network``): virtual networks and network security groups are PUT, read
``provisioningState: Updating`` until polled ``polls_to_done`` times, then ``Succeeded``. Like ARM
the double refuses an NSG rule whose priority is outside 100–4096 (SecurityRuleInvalidPriority),
whose source prefix is not an address range (SecurityRuleInvalidAddressPrefix) or whose port range
is not one (SecurityRuleInvalidPortRange); an NSG still attached to a NIC cannot be deleted
(InUseNetworkSecurityGroupCannotBeDeleted); a VM whose NIC references a subnet or NSG that does not
exist or sits in another region is refused (InvalidResourceReference). The target's subnet ``s``
of virtual network ``v`` is in eastus. Every test ends in ``_replayed``.
"""

from __future__ import annotations

import base64
import copy
import functools
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.providers.conftest import ALLOWED_CIDRS, TEST_BOOT
from tests.unit.providers.replay import ReplayServer, Request, sold_offers
from thrifty.errors import (
    CapacityError,
    ConfigError,
    CredentialsError,
    ProviderError,
    QuotaExceededError,
    ThriftyError,
)
from thrifty.providers.azure import AzureProvider, AzureTarget
from thrifty.providers.base import PriceModel, Provider, provider_class

pytestmark = pytest.mark.replayed
SUB = "00000000-0000-0000-0000-000000000001"
RG = "thrifty-rg"
VMS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"
OPS = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/operations"
NET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network"
NSGS, VNETS = f"{NET}/networkSecurityGroups", f"{NET}/virtualNetworks"
TOKEN = "azure-access-token-never-logged"
TENANT = "11111111-2222-3333-4444-555555555555"
#: the Key Vault the tests' deployments use (its ARM id: the scope of the VMs' role assignments)
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/thrifty-kv"


class StaticToken:
    """A test credential: azure-core only needs ``get_token``."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.append(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


class FakeArm:
    def __init__(self, server: ReplayServer) -> None:
        self.url = server.url
        self.vms: dict[str, dict[str, Any]] = {}
        self.ops: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.ids = itertools.count(1)
        self.put_error: tuple[int, str, str] | None = None
        self.allocation_fails_for: set[str] = set()
        self.spot_capacity_out = False
        self.quota_vms: int | None = None
        #: region → VM sizes it sells (the shared price snapshot)
        self.sizes = sold_offers("azure")
        #: an operation reads InProgress on the polls before this one, its end on this one
        self.polls_to_done = 2
        #: VM name → the public IP address its NIC asked for
        self.public_ips: dict[str, str] = {}
        self.addresses = itertools.count(4)
        #: name → resource (ARM JSON) of the virtual networks and NSGs; ``v`` is the target's network
        self.vnets: dict[str, dict[str, Any]] = {
            "v": {"id": f"{VNETS}/v", "name": "v", "location": "eastus",
                  "properties": {"provisioningState": "Succeeded", "subnets": [{"name": "s"}]}}}  # fmt: skip
        self.nsgs: dict[str, dict[str, Any]] = {}
        #: network resource id → GETs since its last PUT (it reads Updating until polls_to_done)
        self.net_polls: dict[str, int] = {}
        for kind, store in ((VNETS, self.vnets), (NSGS, self.nsgs)):
            server.route("GET", kind, functools.partial(self.get_net, store))
            server.route("PUT", kind, functools.partial(self.put_net, store))
            server.route("DELETE", kind, functools.partial(self.delete_net, store))
        server.route("GET", OPS, self.get_op)
        server.route("GET", VMS, self.get_vm)
        server.route("PUT", VMS, self.put_vm)
        server.route("PATCH", VMS, self.patch_vm)
        server.route("DELETE", VMS, self.delete_vm)
        server.route("POST", VMS, self.post_vm)
        #: Microsoft.Authorization: role assignments and the directory of principals (added last:
        #: its route, matched on any scope, is tried before the VM routes)
        self.rbac = FakeAuthorization(server)

    def _check(self, req: Request) -> None:
        assert req.headers.get("Authorization") == f"Bearer {TOKEN}"
        assert req.query.get("api-version"), "ARM calls always carry api-version"

    def _lro(
        self,
        status: int,
        body: Any,
        result: str,
        error: dict[str, str] | None = None,
        done: Callable[[], None] | None = None,
    ) -> tuple[Any, ...]:
        """201/202 with the operation's URL; ``done`` (its effect) runs when a poll finds it ended."""
        op_id = f"op-{next(self.ids)}"
        self.ops[op_id] = {"name": op_id, "result": result, "error": error, "done": done}
        url = f"{self.url}{OPS}/{op_id}?api-version=2024-07-01"
        return status, body, {"Azure-AsyncOperation": url, "Location": url}

    def get_op(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        op_id = req.path.rsplit("/", 1)[1]
        op = self.ops[op_id]
        self.polls[op_id] = self.polls.get(op_id, 0) + 1
        body: dict[str, Any] = {"name": op_id, "startTime": "2026-11-26T10:00:00.0000000+00:00"}
        if self.polls[op_id] < self.polls_to_done:
            return 200, {**body, "status": "InProgress"}
        if op["done"] is not None:
            op["done"]()
            op["done"] = None
        if op["result"] == "Failed":
            return 200, {**body, "status": "Failed", "error": op["error"]}
        return 200, {**body, "status": "Succeeded", "endTime": "2026-11-26T10:00:30.0000000+00:00"}

    def _name(self, req: Request) -> str:
        return req.path.removeprefix(VMS + "/").split("/")[0]

    def put_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        name = self._name(req)
        if self.put_error:
            status, code, message = self.put_error
            return status, {"error": {"code": code, "message": message}}
        if self.quota_vms is not None and len(self.vms) >= self.quota_vms:
            message = ("Operation could not be completed as it results in exceeding approved standardDSv5Family "
                       "Cores quota. Location: eastus, Current Limit: 4, Current Usage: 4")  # fmt: skip
            return 409, {"error": {"code": "QuotaExceeded", "message": message}}
        body = req.body
        refused = self._refuse_size(name, body) or self._refuse_network(name, body)
        if refused is not None:
            return refused
        props = {**body["properties"], "provisioningState": "Creating", "vmId": f"vm-{next(self.ids)}",
                 "timeCreated": "2026-11-26T10:00:00.0000000+00:00"}  # fmt: skip
        vm = {"id": f"{VMS}/{name}", "name": name, "type": "Microsoft.Compute/virtualMachines",
              "location": body["location"], "tags": body.get("tags", {}), "properties": props}  # fmt: skip
        if body.get("identity"):  # ARM answers a system-assigned identity with its principal
            vm["identity"] = {
                **body["identity"],
                "principalId": self.rbac.new_principal(),
                "tenantId": TENANT,
            }
        spot_refused = self.spot_capacity_out and body["properties"].get("priority") == "Spot"
        vm["_power"] = "starting"
        self.vms[name] = vm  # ARM keeps even a VM whose allocation fails: the caller must delete it
        if body["properties"]["hardwareProfile"]["vmSize"] in self.allocation_fails_for or spot_refused:
            error = {"code": "AllocationFailed", "message": "Allocation failed. We do not have sufficient capacity "
                     "for the requested VM size in this region."}  # fmt: skip
            return self._lro(201, vm, "Failed", error, done=lambda: props.update(provisioningState="Failed"))
        if self._asks_public_ip(body):
            self.public_ips[name] = f"20.42.0.{next(self.addresses)}"
        return self._lro(201, vm, "Succeeded", done=lambda: self._created(vm))

    def _created(self, vm: dict[str, Any]) -> None:
        vm["properties"]["provisioningState"] = "Succeeded"
        vm["_power"] = "running"

    @staticmethod
    def _asks_public_ip(body: dict[str, Any]) -> bool:
        nics = body["properties"]["networkProfile"].get("networkInterfaceConfigurations") or []
        ip_configs = [ip for nic in nics for ip in nic["properties"].get("ipConfigurations") or []]
        return any("publicIPAddressConfiguration" in ip.get("properties", {}) for ip in ip_configs)

    def _refuse_size(self, name: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """ARM's answers to a size the region does not sell, or that does not exist at all."""
        size, region = body["properties"]["hardwareProfile"]["vmSize"], body["location"]
        if size in self.sizes.get(region, ()):
            return None
        if not any(size in sizes for sizes in self.sizes.values()):
            message = (f"The value {size} provided for the VM size is not valid. The valid sizes in the current "
                       f"region are: {', '.join(sorted(self.sizes.get(region, ()))[:5])}, ….")  # fmt: skip
            return 400, {"error": {"code": "InvalidParameter", "message": message, "target": "vmSize"}}
        message = (f"The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: "
                   f"{size}' is currently not available in location '{region}'. Please try another size or "
                   "deploy to a different location or different zone. See https://aka.ms/azureskunotavailable "
                   "for details.")  # fmt: skip
        return 409, {"error": {"code": "SkuNotAvailable", "message": message, "target": name}}

    def _refuse_network(self, name: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """ARM's answer to a NIC whose subnet or NSG does not exist or is in another region."""
        for nic in body["properties"]["networkProfile"].get("networkInterfaceConfigurations") or []:
            props = nic["properties"]
            refs = [ip["properties"]["subnet"]["id"] for ip in props.get("ipConfigurations") or []]
            refs += [props["networkSecurityGroup"]["id"]] if props.get("networkSecurityGroup") else []
            for ref in refs:
                found = self._find_ref(ref)
                if found is None or found["location"] != body["location"]:
                    message = (f"Resource {ref} referenced by resource {VMS}/{name} was not found. Please make "
                               "sure that the referenced resource exists, and that both resources are in the "
                               "same region.")  # fmt: skip
                    return 400, {"error": {"code": "InvalidResourceReference", "message": message}}
        return None

    def _find_ref(self, ref: str) -> dict[str, Any] | None:
        if ref.startswith(f"{VNETS}/"):
            vnet, _, subnet = ref.removeprefix(f"{VNETS}/").partition("/subnets/")
            found = self.vnets.get(vnet)
            subnets = [s["name"] for s in (found or {}).get("properties", {}).get("subnets", [])]
            return found if subnet in subnets else None
        return self.nsgs.get(ref.removeprefix(f"{NSGS}/"))

    # -- Microsoft.Network ---------------------------------------------------------------------
    def get_net(self, store: dict[str, dict[str, Any]], req: Request) -> tuple[Any, ...]:
        self._check(req)
        name = req.path.rsplit("/", 1)[1]
        if req.path in (NSGS, VNETS):
            return 200, {"value": [self._view(r) for r in store.values()]}
        found = store.get(name)
        if found is None:
            return 404, {
                "error": {"code": "ResourceNotFound", "message": f"The Resource '{name}' was not found."}
            }
        self.net_polls[found["id"]] = self.net_polls.get(found["id"], 0) + 1
        if self.net_polls[found["id"]] >= self.polls_to_done:
            found["properties"]["provisioningState"] = "Succeeded"
        return 200, self._view(found)

    def put_net(self, store: dict[str, dict[str, Any]], req: Request) -> tuple[Any, ...]:
        self._check(req)
        name = req.path.rsplit("/", 1)[1]
        refused = _refuse_rules(req.body.get("properties", {}).get("securityRules") or [])
        if refused is not None:
            return refused
        kind = "networkSecurityGroups" if store is self.nsgs else "virtualNetworks"
        resource = {**req.body, "id": f"{NET}/{kind}/{name}", "name": name, "type": f"Microsoft.Network/{kind}",
                    "properties": {**req.body.get("properties", {}), "provisioningState": "Updating"}}  # fmt: skip
        status = 200 if name in store else 201
        store[name] = resource
        self.net_polls[resource["id"]] = 0
        return status, self._view(resource)

    def delete_net(self, store: dict[str, dict[str, Any]], req: Request) -> tuple[Any, ...]:
        self._check(req)
        name = req.path.rsplit("/", 1)[1]
        if name not in store:
            return 204, None
        users = [vm["name"] for vm in self.vms.values() if f'/{name}"' in json.dumps(vm["properties"])]
        if store is self.nsgs and users:
            message = (f"Network security group {NSGS}/{name} cannot be deleted because it is in use by the "
                       f"following resources: {', '.join(users)}.")  # fmt: skip
            return 400, {"error": {"code": "InUseNetworkSecurityGroupCannotBeDeleted", "message": message}}
        store.pop(name)
        return 200, None

    def get_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        if req.path == VMS:
            return 200, {"value": [self._view(vm) for vm in self.vms.values()]}
        vm = self.vms.get(self._name(req))
        if vm is None:
            return 404, {
                "error": {
                    "code": "ResourceNotFound",
                    "message": f"The Resource '{self._name(req)}' was not found.",
                }
            }
        view = self._view(vm)
        if req.query.get("$expand") == ["instanceView"]:
            power = vm.get("_power", "running")
            state = view["properties"]["provisioningState"].lower()
            view["properties"]["instanceView"] = {"statuses": [
                {"code": f"ProvisioningState/{state}", "level": "Info"},
                {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"}]}  # fmt: skip
        return 200, view

    def _view(self, vm: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy({k: v for k, v in vm.items() if not k.startswith("_")})

    def patch_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        vm = self.vms[self._name(req)]
        vm["tags"] = req.body["tags"]
        return 200, self._view(vm)

    def delete_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        name = self._name(req)
        vm = self.vms.get(name)
        if vm is None:
            return 204, None
        vm["properties"]["provisioningState"] = "Deleting"  # listed until the delete has ended

        def gone() -> None:
            self.vms.pop(name, None)
            self.public_ips.pop(name, None)
            self.rbac.directory.pop(vm.get("identity", {}).get("principalId", ""), None)  # goes with it

        return self._lro(202, None, "Succeeded", done=gone)

    def post_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        name, verb = req.path.removeprefix(VMS + "/").split("/")
        vm = self.vms[name]
        vm["_power"] = {"deallocate": "deallocating", "start": "starting"}[verb]
        final = {"deallocate": "deallocated", "start": "running"}[verb]
        return self._lro(202, None, "Succeeded", done=lambda: vm.update(_power=final))


# -- Microsoft.Authorization (role assignments) ------------------------------------------------------
#: built-in role definitions the double knows (their ids are the same in every tenant)
BUILT_IN_ROLES = {
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
}
ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments"
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _arm_error(status: int, code: str, message: str) -> tuple[int, Any]:
    return status, {"error": {"code": code, "message": message}}


class FakeAuthorization:
    """ARM role assignments (REST 2022-04-01) on any scope, and the directory of principals.

    Like ARM: a scope without a subscription is 404 MissingSubscription; a scope with a resource type
    but no name (an odd number of segments) is the 400 InvalidApiVersionParameter ARM sends for it; an
    assignment name that is not a GUID is 400 InvalidRoleAssignmentId; a role definition id of another
    shape is 400 InvalidRoleDefinitionId, an unknown role 400 RoleDefinitionDoesNotExist; the same
    name with other properties is 400 RoleAssignmentUpdateNotPermitted, the same (scope, role,
    principal) under another name 409 RoleAssignmentExists; a caller without
    ``roleAssignments/write`` (``deny_writes``) gets 403 AuthorizationFailed.

    Principals: every VM identity joins ``directory`` unreplicated, and ARM's lookup misses it for
    its first ``replication_lookups`` lookups (400 PrincipalNotFound with ARM's message); a principal
    never created is always missing. As documented, a request that names ``principalType`` skips the
    lookup (a type that contradicts a replicated principal is 400 UnmatchedPrincipalType);
    ``lookup_always`` makes the double look anyway, to prove the provider's retry of PrincipalNotFound
    (kept for the same race the Azure CLI retries)."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.assignments: dict[str, dict[str, Any]] = {}
        #: principal id → lookups that still miss it (0: replicated)
        self.directory: dict[str, int] = {}
        self.replication_lookups = 2
        self.lookup_always = False
        self.deny_writes = False
        for method, handler in (("PUT", self.put), ("DELETE", self.delete), ("GET", self.list)):
            server.route(method, "/", handler, contains=ASSIGNMENTS)

    def new_principal(self) -> str:
        principal = str(uuid.uuid4())
        self.directory[principal] = self.replication_lookups
        return principal

    def holds(self, principal: str, scope: str, roles: set[str]) -> bool:
        """Whether ``principal`` has one of ``roles`` at ``scope`` or above it."""
        return any(
            a["properties"]["principalId"] == principal
            and a["properties"]["roleDefinitionId"].rsplit("/", 1)[1] in roles
            and (scope.lower() + "/").startswith(a["properties"]["scope"].lower() + "/")
            for a in self.assignments.values()
        )

    def _refuse_scope(self, req: Request, scope: str) -> tuple[int, Any] | None:
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _arm_error(401, "AuthenticationFailed", "Authentication failed.")
        if not req.query.get("api-version"):
            return _arm_error(
                400, "MissingApiVersionParameter", "The api-version query parameter is required."
            )
        parts = scope.strip("/").split("/")
        if parts[0].lower() != "subscriptions" or len(parts) < 2 or not _GUID.fullmatch(parts[1]):
            message = "The request did not have a subscription or a valid tenant level resource provider."
            return _arm_error(404, "MissingSubscription", message)
        if len(parts) % 2:
            version = req.query["api-version"][0]
            message = f"The api-version '{version}' is invalid. The supported versions are '2022-04-01,…'."
            return _arm_error(400, "InvalidApiVersionParameter", message)
        return None

    def put(self, req: Request) -> tuple[int, Any]:
        scope, _, name = req.path.partition(ASSIGNMENTS + "/")
        refused = self._refuse_scope(req, scope) or self._refuse_put(req, scope, name)
        if refused is not None:
            return refused
        props = req.body["properties"]
        key = f"{scope}{ASSIGNMENTS}/{name}".lower()
        if key in self.assignments:
            return 201, self.assignments[key]  # the same assignment again: nothing changes
        created = {**props, "scope": scope, "createdOn": "2026-11-26T10:00:00.0000000Z"}
        created.setdefault("principalType", "ServicePrincipal")
        self.assignments[key] = {"id": f"{scope}{ASSIGNMENTS}/{name}", "name": name,
                                 "type": "Microsoft.Authorization/roleAssignments", "properties": created}  # fmt: skip
        return 201, self.assignments[key]

    def _refuse_put(self, req: Request, scope: str, name: str) -> tuple[int, Any] | None:
        props = (req.body or {}).get("properties") or {}
        role_id, principal = str(props.get("roleDefinitionId", "")), str(props.get("principalId", ""))
        if not _GUID.fullmatch(name):
            message = f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            return _arm_error(400, "InvalidRoleAssignmentId", message)
        if self.deny_writes:
            message = (f"The client 'thrifty' with object id '{uuid.UUID(int=1)}' does not have authorization to "
                       f"perform action 'Microsoft.Authorization/roleAssignments/write' over scope "
                       f"'{scope}{ASSIGNMENTS}/{name}' or the scope is invalid.")  # fmt: skip
            return _arm_error(403, "AuthorizationFailed", message)
        shape = re.fullmatch(
            r"/subscriptions/[^/]+/providers/Microsoft\.Authorization/roleDefinitions/(.+)", role_id
        )
        if shape is None or not _GUID.fullmatch(shape.group(1)):
            return _arm_error(
                400, "InvalidRoleDefinitionId", f"The role definition ID '{role_id}' is not valid."
            )
        if shape.group(1) not in BUILT_IN_ROLES:
            message = f"The specified role definition with ID '{shape.group(1)}' does not exist."
            return _arm_error(400, "RoleDefinitionDoesNotExist", message)
        return self._refuse_principal(principal, props.get("principalType")) or self._refuse_twin(
            scope, name, props
        )

    def _refuse_principal(self, principal: str, principal_type: str | None) -> tuple[int, Any] | None:
        replicated = self.directory.get(principal) == 0
        if principal_type and not self.lookup_always:  # documented: no directory lookup
            if replicated and principal_type != "ServicePrincipal":
                message = (f"The PrincipalId '{principal}' has type 'ServicePrincipal' , which is different "
                           f"from specified PrincipalType '{principal_type}'.")  # fmt: skip
                return _arm_error(400, "UnmatchedPrincipalType", message)
            return None
        if replicated:
            return None
        if principal in self.directory:
            self.directory[principal] -= 1
        message = (f"Principal {principal.replace('-', '')} does not exist in the directory {TENANT}. Check that "
                   "you have the correct principal ID. If you are creating this principal and then immediately "
                   "assigning a role, this error might be related to a replication delay. In this case, set the "
                   "role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  "
                   "See https://aka.ms/docs-principaltype")  # fmt: skip
        return _arm_error(400, "PrincipalNotFound", message)

    def _refuse_twin(self, scope: str, name: str, props: dict[str, Any]) -> tuple[int, Any] | None:
        key = f"{scope}{ASSIGNMENTS}/{name}".lower()
        same = ("principalId", "roleDefinitionId")
        existing = self.assignments.get(key)
        if existing is not None and any(existing["properties"][k] != props[k] for k in same):
            message = "Tenant ID, application ID, principal ID, and scope are not allowed to be updated."
            return _arm_error(400, "RoleAssignmentUpdateNotPermitted", message)
        for other_key, other in self.assignments.items():
            mine = other["properties"]
            if (
                other_key != key
                and mine["scope"].lower() == scope.lower()
                and all(mine[k] == props[k] for k in same)
            ):
                return _arm_error(409, "RoleAssignmentExists", "The role assignment already exists.")
        return None

    def delete(self, req: Request) -> tuple[int, Any]:
        scope = req.path.partition(ASSIGNMENTS + "/")[0]
        refused = self._refuse_scope(req, scope)
        if refused is not None:
            return refused
        found = self.assignments.pop(req.path.lower(), None)
        return (200, found) if found is not None else (204, None)

    def list(self, req: Request) -> tuple[int, Any]:
        """Assignments at, above and below the scope (ARM's list without a filter)."""
        scope = req.path.removesuffix(ASSIGNMENTS)
        refused = self._refuse_scope(req, scope)
        if refused is not None:
            return refused
        low = scope.lower() + "/"
        return 200, {"value": [
            a for a in self.assignments.values()
            if low.startswith(a["properties"]["scope"].lower() + "/")
            or (a["properties"]["scope"].lower() + "/").startswith(low)
        ]}  # fmt: skip


def _refuse_rules(rules: list[dict[str, Any]]) -> tuple[int, Any] | None:
    """ARM's 400s for NSG security rules: priority, address prefix, port range."""
    import ipaddress

    for rule in rules:
        props = rule.get("properties", {})
        priority = props.get("priority")
        if not isinstance(priority, int) or not 100 <= priority <= 4096:
            message = f"Security rule has invalid Priority. Value provided: {priority}. Allowed values are from 100 to 4096."
            return 400, {"error": {"code": "SecurityRuleInvalidPriority", "message": message}}
        for prefix in [*(props.get("sourceAddressPrefixes") or []), props.get("sourceAddressPrefix")]:
            if prefix in (None, "*", "Internet", "VirtualNetwork", "AzureLoadBalancer"):
                continue
            try:
                ipaddress.ip_network(prefix, strict=False)
            except ValueError:
                message = f"Security rule has invalid Address prefix. Value provided: {prefix}"
                return 400, {"error": {"code": "SecurityRuleInvalidAddressPrefix", "message": message}}
        ports = str(props.get("destinationPortRange", ""))
        if ports != "*" and not all(p.isdigit() and int(p) <= 65535 for p in ports.split("-", 1)):
            message = (f"Security rule has invalid Port range. Value provided: {ports}. Value should be an integer "
                       "OR integer range with '-' delimiter. Valid range 0-65535.")  # fmt: skip
            return 400, {"error": {"code": "SecurityRuleInvalidPortRange", "message": message}}
    return None


@pytest.fixture
def arm(replay_server: ReplayServer) -> FakeArm:
    return FakeArm(replay_server)


def _target(arm: FakeArm) -> AzureTarget:
    subnet = (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
    )
    return AzureTarget(
        subscription_id=SUB,
        resource_group=RG,
        subnet_id=subnet,
        ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI thrifty@test",
        base_url=arm.url,
        polling_interval_s=0.01,
        boot=TEST_BOOT,
    )


@pytest.fixture
def azure(arm: FakeArm) -> AzureProvider:
    return AzureProvider(_target(arm), credential=StaticToken())


def _spec(make_spec: Any, **kw: Any) -> Any:
    return make_spec(**{"region": "eastus", "instance_type": "Standard_D2s_v5", **kw})


def test_registered_and_protocol_replayed(azure: AzureProvider) -> None:
    assert provider_class("azure") is AzureProvider
    assert isinstance(azure, Provider)


def test_deploy_spot_vms_awaits_the_long_running_operations_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    status = azure.deploy(_spec(make_spec, on_demand_floor=1))
    assert (status.state, status.replicas_ready) == ("running", 2)
    regular, spot = arm.vms["thrifty-minilm-0"]["properties"], arm.vms["thrifty-minilm-1"]["properties"]
    assert regular["priority"] == "Regular" and "evictionPolicy" not in regular
    assert (spot["priority"], spot["evictionPolicy"], spot["billingProfile"]) == (
        "Spot",
        "Delete",
        {"maxPrice": -1},
    )
    tags = arm.vms["thrifty-minilm-1"]["tags"]
    assert (tags["thrifty:managed"], tags["thrifty:deployment"]) == ("true", "minilm")
    nic = spot["networkProfile"]["networkInterfaceConfigurations"][0]
    assert nic["properties"]["deleteOption"] == "Delete"
    assert base64.b64decode(spot["osProfile"]["customData"]).decode().startswith("#cloud-config")
    assert arm.polls and all(count >= 2 for count in arm.polls.values()), "every LRO polled to its end"


def test_deploy_twice_scale_hibernate_wake_delete_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    azure.deploy(_spec(make_spec))
    azure.deploy(_spec(make_spec))
    assert sorted(arm.vms) == ["thrifty-minilm-0", "thrifty-minilm-1"]
    assert azure.scale("minilm", 3).replicas_ready == 3
    assert azure.scale("minilm", 1).replicas_desired == 1
    assert azure.hibernate("minilm").state == "hibernated"
    assert azure.wake("minilm").state == "running"
    azure.delete("minilm")
    azure.delete("minilm")
    assert arm.vms == {}
    assert azure.status("minilm").state == "deleted"


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (409, "SkuNotAvailable", CapacityError),
        (409, "QuotaExceeded", QuotaExceededError),
        (409, "OperationNotAllowed", QuotaExceededError),
        (403, "AuthorizationFailed", CredentialsError),
    ],
)
def test_arm_errors_are_translated_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any, status: int, code: str, error: type[Exception]
) -> None:
    arm.put_error = (status, code, f"{code}: details from ARM")
    with pytest.raises(error, match=code) as info:
        azure.deploy(_spec(make_spec))
    assert TOKEN not in str(info.value)
    assert arm.vms == {}


def test_authorization_failed_names_the_rbac_action_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    arm.put_error = (403, "AuthorizationFailed", "The client does not have authorization to perform action")
    with pytest.raises(CredentialsError) as info:
        azure.deploy(_spec(make_spec))
    assert info.value.hint and "Microsoft.Compute/virtualMachines/write" in info.value.hint


def test_allocation_failed_in_the_lro_is_capacity_and_cleans_up_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    arm.allocation_fails_for.add("Standard_D2s_v5")
    with pytest.raises(CapacityError, match="AllocationFailed"):
        azure.deploy(_spec(make_spec))
    assert arm.vms == {}, "the failed VM resource must be deleted"


def test_quota_half_way_rolls_back_replayed(azure: AzureProvider, arm: FakeArm, make_spec: Any) -> None:
    arm.quota_vms = 1
    with pytest.raises(QuotaExceededError):
        azure.deploy(_spec(make_spec, price_model=PriceModel.ON_DEMAND))
    assert arm.vms == {}


def test_list_managed_replayed(azure: AzureProvider, arm: FakeArm, make_spec: Any) -> None:
    azure.deploy(_spec(make_spec, replicas=1))
    arm.vms["someone-elses"] = {**arm.vms["thrifty-minilm-0"], "name": "someone-elses", "tags": {}}
    resource, nsg = azure.list_managed()
    assert (resource.kind, resource.id, resource.region, resource.deployment_name) == (
        "virtual-machine", "thrifty-minilm-0", "eastus", "minilm")  # fmt: skip
    assert (nsg.kind, nsg.id, nsg.region, nsg.deployment_name) == (
        "network-security-group", "thrifty-minilm", "eastus", "minilm")  # fmt: skip
    assert all(r.created_at is not None and r.created_at.utcoffset() is not None for r in (resource, nsg))
    azure.delete_resource(resource)
    assert list(arm.vms) == ["someone-elses"]


# -- spot rebalance on Azure ----------------------------------------------------------------------------
def _executor(azure: AzureProvider) -> Any:
    from thrifty.providers.rebalance import Executor

    return Executor(provider=azure, health_check=lambda replica: replica.state == "running")


def test_evicted_vm_is_replaced_with_a_30_s_drain_budget_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    from thrifty.policies.rebalance import decide
    from thrifty.providers.rebalance import view_of

    azure.deploy(_spec(make_spec))
    del arm.vms["thrifty-minilm-0"]  # evicted, eviction policy Delete
    (action,) = decide(view_of(azure, "minilm", region="eastus"))
    assert (action.kind, action.slot, action.drain_budget_s) == ("replace", 0, 30)
    assert [o.status for o in _executor(azure).run([action])] == ["done"]
    assert sorted(vm["tags"]["thrifty:slot"] for vm in arm.vms.values()) == ["0", "1"]


def test_spot_refused_falls_back_to_regular_then_returns_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    from thrifty.policies.rebalance import decide
    from thrifty.providers.rebalance import view_of

    arm.spot_capacity_out = True
    azure.deploy(_spec(make_spec))
    assert {vm["properties"]["priority"] for vm in arm.vms.values()} == {"Regular"}
    assert {vm["tags"]["thrifty:fallback"] for vm in arm.vms.values()} == {"on-demand"}

    outcomes = _executor(azure).run(decide(view_of(azure, "minilm", region="eastus")))
    assert [o.status for o in outcomes] == ["skipped", "skipped"]
    assert len(arm.vms) == 2, "the refused spot VMs were deleted again"

    arm.spot_capacity_out = False
    outcomes = _executor(azure).run(decide(view_of(azure, "minilm", region="eastus")))
    assert [(o.action.kind, o.status) for o in outcomes] == [("return_to_spot", "done")] * 2
    assert {vm["properties"]["priority"] for vm in arm.vms.values()} == {"Spot"} and len(arm.vms) == 2


# -- what ARM refuses, and what it takes time for ---------------------------------------------------
def _sold_elsewhere(arm: FakeArm, region: str) -> str:
    """A VM size the snapshot sells in some region but not in ``region``."""
    here = arm.sizes[region]
    return min(size for sizes in arm.sizes.values() for size in sizes - here)


def test_a_size_the_region_does_not_sell_is_sku_not_available_and_leaves_nothing_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    size = _sold_elsewhere(arm, "eastus")
    with pytest.raises(CapacityError, match="SkuNotAvailable") as info:
        azure.deploy(_spec(make_spec, instance_type=size))
    assert f"{size}' is currently not available in location 'eastus'" in str(info.value)
    assert info.value.hint and "next candidate" in info.value.hint
    assert arm.vms == {} and arm.public_ips == {} and azure.list_managed() == []


def test_a_size_not_sold_falls_through_to_a_region_that_sells_it_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    from thrifty.providers.specs import deploy_first_available

    size = _sold_elsewhere(arm, "eastus")
    selling = min(region for region, sizes in arm.sizes.items() if size in sizes)
    candidates = [_spec(make_spec, region=r, instance_type=size, replicas=1) for r in ("eastus", selling)]
    chosen, status, skipped = deploy_first_available(candidates, lambda spec: azure)
    assert (chosen.region, status.replicas_ready) == (selling, 1)
    assert len(skipped) == 1 and "SkuNotAvailable" in skipped[0]
    assert [vm["location"] for vm in arm.vms.values()] == [selling]


def test_a_size_that_does_not_exist_is_a_config_error_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    with pytest.raises(ConfigError, match="InvalidParameter: The value Standard_Q9s_v9 provided") as info:
        azure.deploy(_spec(make_spec, instance_type="Standard_Q9s_v9"))
    assert info.value.hint and "VM size" in info.value.hint
    assert arm.vms == {}


def test_slow_operations_are_awaited_replayed(azure: AzureProvider, arm: FakeArm, make_spec: Any) -> None:
    arm.polls_to_done = 4  # InProgress on three polls: the VM reads Creating meanwhile
    status = azure.deploy(_spec(make_spec, price_model=PriceModel.ON_DEMAND))
    assert (status.state, status.replicas_ready) == ("running", 2)
    assert {vm["properties"]["provisioningState"] for vm in arm.vms.values()} == {"Succeeded"}
    assert arm.polls and all(count == 4 for count in arm.polls.values())
    assert azure.hibernate("minilm").state == "hibernated"
    assert {vm["_power"] for vm in arm.vms.values()} == {"deallocated"}
    azure.delete("minilm")
    assert arm.vms == {} and azure.status("minilm").state == "deleted"


def test_a_public_ip_only_when_asked_for_and_deleted_with_the_vm_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    from dataclasses import replace

    azure.deploy(_spec(make_spec, replicas=1))
    assert list(arm.public_ips) == ["thrifty-minilm-0"]
    private = AzureProvider(replace(_target(arm), public_ip=False), credential=StaticToken())
    private.deploy(_spec(make_spec, name="private", replicas=1))
    assert "thrifty-private-0" in arm.vms and "thrifty-private-0" not in arm.public_ips
    azure.delete("minilm")
    assert arm.public_ips == {}


# -- network security group and regions ----------------------------------------------------------
def test_each_deployment_gets_an_nsg_on_its_nics_deleted_with_it_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    azure.deploy(_spec(make_spec))
    nsg = arm.nsgs["thrifty-minilm"]
    assert nsg["location"] == "eastus" and nsg["properties"]["provisioningState"] == "Succeeded"
    [rule] = nsg["properties"]["securityRules"]
    assert rule["properties"] | {} == {
        "priority": 1000, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
        "sourceAddressPrefixes": list(ALLOWED_CIDRS), "sourcePortRange": "*",
        "destinationAddressPrefix": "*", "destinationPortRange": "8080"}  # fmt: skip
    for vm in arm.vms.values():
        nic = vm["properties"]["networkProfile"]["networkInterfaceConfigurations"][0]["properties"]
        assert nic["networkSecurityGroup"]["id"] == nsg["id"]
        assert nic["ipConfigurations"][0]["properties"]["subnet"]["id"].endswith(
            "/virtualNetworks/v/subnets/s"
        )
    assert set(arm.public_ips) == set(arm.vms), "each VM asked for its public IP"
    azure.delete("minilm")
    assert arm.nsgs == {} and arm.vms == {} and arm.public_ips == {}


def test_no_source_range_is_refused_before_any_call_replayed(arm: FakeArm, make_spec: Any) -> None:
    from dataclasses import replace

    from thrifty.settings import get_settings

    get_settings.cache_clear()
    closed = AzureProvider(
        replace(_target(arm), boot=replace(TEST_BOOT, allowed_cidrs=())), credential=StaticToken()
    )
    with pytest.raises(ConfigError, match="no source range") as info:
        closed.deploy(_spec(make_spec))
    assert info.value.hint and "THRIFTY_CONTROL_PLANE_CIDRS" in info.value.hint
    assert arm.nsgs == {} and arm.vms == {}


def test_a_failed_deploy_deletes_the_nsg_it_created_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    arm.allocation_fails_for.add("Standard_D2s_v5")
    with pytest.raises(CapacityError):
        azure.deploy(_spec(make_spec, price_model=PriceModel.ON_DEMAND))
    assert arm.nsgs == {} and azure.list_managed() == []


def test_gc_dry_run_finds_a_leftover_nsg_replayed(azure: AzureProvider, arm: FakeArm, make_spec: Any) -> None:
    from thrifty.providers.gc import sweep

    azure.deploy(_spec(make_spec, replicas=1))
    azure._delete_vm("thrifty-minilm-0")  # a delete cut short before the NSG went
    listed = sweep([azure], [], grace_s=0, dry_run=True)
    assert [(o.resource.kind, o.resource.id) for o in listed] == [
        ("network-security-group", "thrifty-minilm")
    ]
    assert "thrifty-minilm" in arm.nsgs
    sweep([azure], [], grace_s=0)
    assert arm.nsgs == {} and sweep([azure], [], grace_s=0, dry_run=True) == []


def test_another_region_gets_its_own_network_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    azure.deploy(_spec(make_spec, region="westeurope", replicas=1))
    vm = arm.vms["thrifty-minilm-0"]
    assert vm["location"] == "westeurope"
    nic = vm["properties"]["networkProfile"]["networkInterfaceConfigurations"][0]["properties"]
    assert (
        nic["ipConfigurations"][0]["properties"]["subnet"]["id"]
        == f"{VNETS}/thrifty-westeurope/subnets/serving"
    )
    assert arm.vnets["thrifty-westeurope"]["location"] == "westeurope"
    assert arm.vnets["thrifty-westeurope"]["tags"] == {"thrifty:shared": "true"}, "shared: never swept"
    assert arm.nsgs["thrifty-minilm"]["location"] == "westeurope"
    azure.deploy(_spec(make_spec, name="second", region="westeurope", replicas=1))
    assert sorted(arm.vnets) == ["thrifty-westeurope", "v"], "one network per region"


def test_the_double_refuses_a_nic_in_another_region_than_its_subnet_replayed(
    azure: AzureProvider, arm: FakeArm, make_spec: Any
) -> None:
    from azure.mgmt.compute import models as m

    from thrifty.errors import ProviderError

    spec = _spec(make_spec, region="westeurope", replicas=1)
    azure.deploy(spec.with_changes(name="other"))  # the NSG and network of westeurope exist
    body = azure.vm_body(spec, 0)
    nic = body.properties.network_profile.network_interface_configurations[0]
    nic.properties.ip_configurations[0].properties.subnet = m.SubResource(id=azure.target.subnet_id)  # eastus
    nic.properties.network_security_group = m.SubResource(id=f"{NSGS}/thrifty-other")
    with pytest.raises(ProviderError, match="InvalidResourceReference") as info:
        azure._await("create", azure.client.virtual_machines.begin_create_or_update, RG, "x", body)
    assert "same region" in str(info.value)


def test_the_double_refuses_bad_nsg_rules_as_arm_does_replayed(azure: AzureProvider, arm: FakeArm) -> None:
    from thrifty.errors import ProviderError

    good = {"priority": 1000, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
            "sourceAddressPrefixes": ["198.51.100.0/24"], "destinationPortRange": "8080"}  # fmt: skip
    refused = {
        "SecurityRuleInvalidPriority": {**good, "priority": 5000},
        "SecurityRuleInvalidAddressPrefix": {**good, "sourceAddressPrefixes": ["10.0.0.300/8"]},
        "SecurityRuleInvalidPortRange": {**good, "destinationPortRange": "80-99999"},
    }
    for code, props in refused.items():
        body = {"location": "eastus", "properties": {"securityRules": [{"name": "r", "properties": props}]}}
        with pytest.raises(ProviderError, match=code):
            azure._arm("PUT", f"{NSGS}/bad", body)
    assert arm.nsgs == {}


# -- Key Vault (the deployment's TLS key and token digest) ---------------------------------------------
_SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
#: a managed identity's access token names its principal (a real one is a JWT whose oid claim does);
#: the Blob double reads it the same way
from tests.unit.providers.storage_doubles import MI_TOKEN_PREFIX  # noqa: E402

_READERS = {"4633458b-17de-408a-b874-0445c86b69e6", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"}


class FakeImds:
    """The managed identity's token endpoint of the Azure instance metadata service, for the VM
    whose identity is ``principal``. Like IMDS: no ``Metadata: true`` header, a forwarded request
    (X-Forwarded-For), a missing api-version or resource are 400; a VM without an identity gets 400
    "Identity not found"."""

    def __init__(self, server: ReplayServer) -> None:
        self.url = server.url
        self.principal: str | None = None
        server.route("GET", "/metadata/identity/oauth2/token", self.token)

    def token(self, req: Request) -> tuple[int, Any]:
        refused = _imds_refusal(req)
        if refused:
            return 400, {"error": "invalid_request", "error_description": refused}
        if self.principal is None:
            return 400, {"error": "invalid_request", "error_description": "Identity not found"}
        resource = req.query["resource"][0]
        body = {"access_token": MI_TOKEN_PREFIX + self.principal, "expires_in": "86399",
                "resource": resource, "token_type": "Bearer"}  # fmt: skip
        return 200, body


def _imds_refusal(req: Request) -> str:
    if req.headers.get("Metadata") != "true":
        return "Required metadata header not specified"
    if req.headers.get("X-Forwarded-For"):
        return "Request contains the X-Forwarded-For header"
    if not req.query.get("api-version"):
        return "Bad request. api-version was not specified in the request"
    if not req.query.get("resource"):
        return "Required query variable 'resource' is missing"
    return ""


class FakeKeyVault:
    """Key Vault secrets (REST 7.4) at the replay server's root, as the control plane and a VM use
    them. Like Key Vault: every call needs a bearer token (401 Unauthorized without) and api-version;
    thrifty's token may set/list/delete/purge/get; a managed identity's token may get only while its
    principal holds "Key Vault Secrets User" (or Officer) at the vault's scope or above in the ARM
    double (else 403 Forbidden, ForbiddenByRbac) — and only ``propagation_reads`` refused reads after
    the assignment appeared, as a new role takes a while to reach the data plane. A name outside
    1-127 letters, digits and '-' is 400 BadParameter; an unknown secret is 404 SecretNotFound; a
    deleted secret stays soft-deleted (a set of its name is 409 Conflict) until purged."""

    def __init__(self, server: ReplayServer, rbac: FakeAuthorization, scope: str = VAULT_ID) -> None:
        self.url = server.url
        self.rbac, self.scope = rbac, scope
        self.secrets: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.propagation_reads = 0
        #: principal → reads refused since its role appeared
        self.refused_reads: dict[str, int] = {}
        server.route("PUT", "/secrets", self.put)
        server.route("GET", "/secrets", self.get)
        server.route("DELETE", "/secrets", self.delete)
        server.route("DELETE", "/deletedsecrets", self.purge)

    def _rbac_refusal(self, req: Request) -> tuple[int, Any] | None:
        """403 for a managed identity without the role here (yet)."""
        auth = str(req.headers.get("Authorization") or "")
        if not auth.startswith(f"Bearer {MI_TOKEN_PREFIX}"):
            return None
        principal = auth.removeprefix(f"Bearer {MI_TOKEN_PREFIX}")
        holds = self.rbac.holds(principal, self.scope, _READERS)
        if holds and self.refused_reads.get(principal, 0) >= self.propagation_reads:
            return None
        if holds:
            self.refused_reads[principal] = self.refused_reads.get(principal, 0) + 1
        message = ("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
                   "assignments or role definitions were changed recently, please observe propagation time.\r\n"
                   f"Caller: oid={principal}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'")  # fmt: skip
        return 403, {
            "error": {"code": "Forbidden", "message": message, "innererror": {"code": "ForbiddenByRbac"}}
        }

    def _refused(self, req: Request, allowed: tuple[str, ...]) -> tuple[int, Any] | None:
        if req.headers.get("Authorization") not in {f"Bearer {t}" for t in allowed}:
            message = "AKV10000: Request is missing a Bearer or PoP token."
            return 401, {"error": {"code": "Unauthorized", "message": message}}
        if req.query.get("api-version") != ["7.4"]:
            return 400, {
                "error": {"code": "BadParameter", "message": "The api-version is missing or invalid."}
            }
        name = req.path.strip("/").split("/", 1)[1] if "/" in req.path.strip("/") else ""
        if name and not _SECRET_NAME.fullmatch(name):
            return 400, {
                "error": {
                    "code": "BadParameter",
                    "message": f"The request URI contains an invalid name: {name}",
                }
            }
        return None

    def _missing(self, name: str) -> tuple[int, Any]:
        message = f"A secret with (name/id) {name} was not found in this key vault."
        return 404, {"error": {"code": "SecretNotFound", "message": message}}

    def put(self, req: Request) -> tuple[int, Any]:
        if refused := self._refused(req, (TOKEN,)):
            return refused
        name = req.path.split("/")[2]
        if name in self.deleted:
            message = f"Secret {name} is currently in a deleted but recoverable state."
            return 409, {
                "error": {
                    "code": "Conflict",
                    "message": message,
                    "innererror": {"code": "ObjectIsDeletedButRecoverable"},
                }
            }
        versions = self.secrets.get(name, {}).get("versions", [])
        created = self.secrets.get(name, {}).get("created", int(time.time()))
        self.secrets[name] = {
            "versions": [*versions, req.body["value"]],
            "tags": req.body.get("tags", {}),
            "created": created,
        }
        return 200, self._item(name)

    def _item(self, name: str) -> dict[str, Any]:
        secret = self.secrets[name]
        attributes = {"enabled": True, "created": secret["created"], "updated": secret["created"]}
        return {"id": f"{self.url}/secrets/{name}", "attributes": attributes, "tags": secret["tags"]}

    def get(self, req: Request) -> tuple[int, Any]:
        auth = str(req.headers.get("Authorization") or "")
        mine = (auth.removeprefix("Bearer "),) if auth.startswith(f"Bearer {MI_TOKEN_PREFIX}") else ()
        if refused := self._refused(req, (TOKEN, *mine)) or self._rbac_refusal(req):
            return refused
        name = req.path.strip("/").split("/")[1] if req.path.strip("/").count("/") else ""
        if not name:  # the list: ids and tags, never a value
            if req.headers.get("Authorization") != f"Bearer {TOKEN}":
                return 403, {"error": {"code": "Forbidden", "message": "Caller is not authorized to list."}}
            return 200, {"value": [self._item(n) for n in self.secrets], "nextLink": None}
        if name not in self.secrets:
            return self._missing(name)
        return 200, {**self._item(name), "value": self.secrets[name]["versions"][-1]}

    def delete(self, req: Request) -> tuple[int, Any]:
        if refused := self._refused(req, (TOKEN,)):
            return refused
        name = req.path.split("/")[2]
        if name not in self.secrets:
            return self._missing(name)
        self.deleted[name] = self.secrets.pop(name)
        return 200, {"recoveryId": f"{self.url}/deletedsecrets/{name}", "id": f"{self.url}/secrets/{name}"}

    def purge(self, req: Request) -> tuple[int, Any]:
        if refused := self._refused(req, (TOKEN,)):
            return refused
        name = req.path.split("/")[2]
        if self.deleted.pop(name, None) is None:
            message = f"Deleted Secret not found: {name}"
            return 404, {"error": {"code": "SecretNotFound", "message": message}}
        return 204, None


@pytest.fixture
def vault(replay_server: ReplayServer, arm: FakeArm) -> FakeKeyVault:
    return FakeKeyVault(replay_server, arm.rbac)


@pytest.fixture
def imds(replay_server: ReplayServer) -> FakeImds:
    return FakeImds(replay_server)


def _tls_spec(make_spec: Any, token_sha256: str = "cd" * 32) -> Any:
    from pydantic import SecretStr

    from thrifty import tls

    cert = tls.make_cert("minilm")
    serving = {"token_sha256": token_sha256, "tls_cert_sha256": cert.sha256, "tls_cert_pem": cert.cert_pem}
    bundle = SecretStr(tls.secret_bundle(cert, token_sha256))
    return _spec(make_spec, replicas=1, serving=serving, secret_bundle=bundle), cert


def _vaulted(arm: FakeArm, vault: FakeKeyVault) -> AzureProvider:
    from dataclasses import replace

    target = replace(_target(arm), key_vault_url=vault.url, key_vault_id=VAULT_ID)
    return AzureProvider(target, credential=StaticToken())


def test_the_tls_key_goes_to_key_vault_and_the_vm_reads_it_with_its_identity_replayed(
    arm: FakeArm, vault: FakeKeyVault, imds: FakeImds, make_spec: Any
) -> None:
    from thrifty.secret_fetch import read_bundle

    azure = _vaulted(arm, vault)
    assert azure.secret_store == "Key Vault"
    spec, cert = _tls_spec(make_spec)
    status = azure.deploy(spec)
    assert status.details["serves"].startswith("https")
    assert vault.secrets["thrifty-minilm"]["tags"]["thrifty:deployment"] == "minilm"
    vm = arm.vms["thrifty-minilm-0"]
    assert vm["identity"]["type"] == "SystemAssigned", "the VM reads the vault as itself"
    user_data = base64.b64decode(vm["properties"]["osProfile"]["customData"]).decode()
    ref = f"azure-keyvault:{vault.url}/secrets/thrifty-minilm"
    assert f"THRIFTY_SECRET={ref}" in user_data
    assert cert.key_pem.splitlines()[1] not in user_data and "cd" * 32 not in user_data
    assert TOKEN not in user_data and "THRIFTY_API_TOKEN_SHA256" not in user_data
    env = {"THRIFTY_METADATA_URL": imds.url, "THRIFTY_SECRET_WAIT_S": "0"}  # the IMDS stand-in
    imds.principal = vm["identity"]["principalId"]
    bundle = read_bundle(ref, env)  # what the VM's container does, with its managed identity's token
    assert (bundle.key_pem, bundle.cert_pem, bundle.token_sha256) == (cert.key_pem, cert.cert_pem, "cd" * 32)
    azure.deploy(spec)  # a redeploy adds a version
    assert len(vault.secrets["thrifty-minilm"]["versions"]) == 2
    azure.scale("minilm", 2)  # the spec from the VM's tags: no bundle, the new VM reads the same secret
    added = base64.b64decode(arm.vms["thrifty-minilm-1"]["properties"]["osProfile"]["customData"]).decode()
    assert (
        f"THRIFTY_SECRET={ref}" in added
        and arm.vms["thrifty-minilm-1"]["identity"]["type"] == "SystemAssigned"
    )
    assert len(vault.secrets["thrifty-minilm"]["versions"]) == 2
    azure.delete("minilm")
    assert vault.secrets == {} and vault.deleted == {}, "deleted and purged"
    assert arm.rbac.assignments == {}, "the VMs' roles on the vault went with them"
    with pytest.raises(ConfigError, match="answered 403"):
        read_bundle(ref, env)
    azure.deploy(spec)  # a purged name can be used again
    assert list(vault.secrets) == ["thrifty-minilm"]


def test_a_failed_deploy_deletes_the_secret_it_stored_replayed(
    arm: FakeArm, vault: FakeKeyVault, make_spec: Any
) -> None:
    azure = _vaulted(arm, vault)
    arm.allocation_fails_for.add("Standard_D2s_v5")
    spec, _ = _tls_spec(make_spec)
    with pytest.raises(CapacityError):
        azure.deploy(spec.with_changes(price_model=PriceModel.ON_DEMAND))
    assert vault.secrets == {} and vault.deleted == {} and arm.vms == {}


def test_key_vault_refuses_a_caller_without_its_token_and_nothing_is_left_replayed(
    arm: FakeArm, vault: FakeKeyVault, make_spec: Any
) -> None:
    from dataclasses import replace

    class NoVaultAccess(StaticToken):  # ARM accepts it; the vault does not
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            from azure.core.credentials import AccessToken

            if scopes != ("https://vault.azure.net/.default",):
                return super().get_token(*scopes, **kwargs)
            return AccessToken("someone-elses-token", int(time.time()) + 3600)

    target = replace(_target(arm), key_vault_url=vault.url, key_vault_id=VAULT_ID)
    azure = AzureProvider(target, credential=NoVaultAccess())
    with pytest.raises(CredentialsError, match="Key Vault Secrets Officer") as raised:
        azure.deploy(_tls_spec(make_spec)[0])
    assert "PRIVATE KEY" not in str(raised.value) and "someone-elses-token" not in str(raised.value)
    assert vault.secrets == {} and arm.vms == {} and arm.nsgs == {}


def test_the_double_refuses_what_key_vault_refuses_replayed(arm: FakeArm, vault: FakeKeyVault) -> None:
    from thrifty.errors import NotFoundError
    from thrifty.providers.azure_secrets import AzureKeyVault

    kv = AzureKeyVault(vault.url, StaticToken())
    with pytest.raises(ConfigError, match="BadParameter"):
        kv.put("thrifty_under_score", "{}", {})
    with pytest.raises(ConfigError, match="BadParameter"):
        kv.put("x" * 128, "{}", {})
    with pytest.raises(NotFoundError, match="SecretNotFound"):
        kv._send("GET", "secrets/never-stored", "get never-stored")
    kv.put("kept", "{}", {})
    kv._send("DELETE", "secrets/kept", "delete kept")  # soft-deleted, not purged
    with pytest.raises(ProviderError, match="409 Conflict"):
        kv.put("kept", "{}", {})
    assert vault.secrets == {}


def test_without_a_key_vault_the_vms_serve_plain_http_and_say_so_replayed(
    azure: AzureProvider, arm: FakeArm, vault: FakeKeyVault, make_spec: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert azure.secret_store == ""
    spec = _spec(make_spec, replicas=1, serving={"token_sha256": "ef" * 32})
    with caplog.at_level("WARNING", logger="thrifty.providers.azure"):
        status = azure.deploy(spec)
    assert status.details["serves"].startswith("plain http") and "key_vault_url" in caplog.text
    user_data = base64.b64decode(
        arm.vms["thrifty-minilm-0"]["properties"]["osProfile"]["customData"]
    ).decode()
    assert "THRIFTY_SECRET" not in user_data and f"THRIFTY_API_TOKEN_SHA256={'ef' * 32}" in user_data
    assert "identity" not in arm.vms["thrifty-minilm-0"] and vault.secrets == {}


def test_gc_finds_and_deletes_an_orphaned_key_vault_secret_replayed(
    arm: FakeArm, vault: FakeKeyVault, make_spec: Any
) -> None:
    from thrifty.providers.gc import sweep

    azure = _vaulted(arm, vault)
    spec, _ = _tls_spec(make_spec)
    azure.deploy(spec)
    azure.deploy(spec.with_changes(name="kept"))
    live = [("azure", "kept")]
    assert sweep([azure], [*live, ("azure", "minilm")], grace_s=0, dry_run=True) == [], "both live"
    azure._delete_vm("thrifty-minilm-0")
    azure._delete_nsg("thrifty-minilm")  # a delete cut short before the secret went
    listed = sweep([azure], live, grace_s=0, dry_run=True)
    assert [(o.resource.kind, o.resource.id, o.resource.deployment_name) for o in listed] == [
        ("key-vault-secret", "thrifty-minilm", "minilm")
    ]
    assert "thrifty-minilm" in vault.secrets, "a dry run deletes nothing"
    assert sweep([azure], live, grace_s=3600, dry_run=True) == [], "younger than the grace period"
    sweep([azure], live, grace_s=0)
    assert list(vault.secrets) == ["thrifty-kept"] and vault.deleted == {}, "deleted and purged"
    assert sweep([azure], live, grace_s=0, dry_run=True) == []


# -- the VMs' role on the vault (Microsoft.Authorization/roleAssignments) ------------------------------
def _assignments_of(arm: FakeArm) -> dict[str, dict[str, Any]]:
    """VM name → its role assignment (found through the VM's principal)."""
    by_principal = {a["properties"]["principalId"]: a for a in arm.rbac.assignments.values()}
    return {name: by_principal[vm["identity"]["principalId"]] for name, vm in arm.vms.items()
            if vm["identity"]["principalId"] in by_principal}  # fmt: skip


def test_each_vm_identity_gets_key_vault_secrets_user_on_the_vault_and_loses_it_with_the_vm_replayed(
    arm: FakeArm, vault: FakeKeyVault, imds: FakeImds, make_spec: Any
) -> None:
    from thrifty.secret_fetch import read_bundle

    azure = _vaulted(arm, vault)
    spec, _ = _tls_spec(make_spec)
    azure.deploy(spec.with_changes(replicas=2))
    granted = _assignments_of(arm)
    assert sorted(granted) == ["thrifty-minilm-0", "thrifty-minilm-1"] and len(arm.rbac.assignments) == 2
    props = granted["thrifty-minilm-0"]["properties"]
    assert props["scope"] == VAULT_ID and props["principalType"] == "ServicePrincipal"
    assert props["roleDefinitionId"] == (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"
    )
    assert props["description"] == "thrifty:deployment=minilm vm=thrifty-minilm-0"
    azure.deploy(spec.with_changes(replicas=2))  # a rerun makes the same assignments, not new ones
    assert len(arm.rbac.assignments) == 2
    ref, env = f"azure-keyvault:{vault.url}/secrets/thrifty-minilm", {"THRIFTY_METADATA_URL": imds.url}
    imds.principal = arm.vms["thrifty-minilm-1"]["identity"]["principalId"]
    assert read_bundle(ref, env).token_sha256 == "cd" * 32
    azure.scale("minilm", 1)
    assert sorted(_assignments_of(arm)) == ["thrifty-minilm-0"] and len(arm.rbac.assignments) == 1
    with pytest.raises(ConfigError, match=r"Key Vault: .* answered 403"):
        read_bundle(ref, {**env, "THRIFTY_SECRET_WAIT_S": "0"})  # the retired VM's identity lost it
    imds.principal = arm.rbac.new_principal()  # an identity nobody granted anything
    with pytest.raises(ConfigError, match="answered 403"):
        read_bundle(ref, {**env, "THRIFTY_SECRET_WAIT_S": "0"})
    azure.delete("minilm")
    assert arm.rbac.assignments == {} and arm.vms == {}


def test_a_vm_waits_until_its_new_role_reaches_key_vault_replayed(
    arm: FakeArm, vault: FakeKeyVault, imds: FakeImds, make_spec: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from thrifty.secret_fetch import read_bundle

    azure = _vaulted(arm, vault)
    azure.deploy(_tls_spec(make_spec)[0])
    vault.propagation_reads = 2  # the data plane refuses the VM twice after the assignment appeared
    imds.principal = arm.vms["thrifty-minilm-0"]["identity"]["principalId"]
    ref = f"azure-keyvault:{vault.url}/secrets/thrifty-minilm"
    bundle = read_bundle(ref, {"THRIFTY_METADATA_URL": imds.url, "THRIFTY_SECRET_WAIT_S": "30"})
    assert bundle.token_sha256 == "cd" * 32 and vault.refused_reads[imds.principal] == 2
    assert capsys.readouterr().err.count("waiting") == 2


def test_a_principal_arm_cannot_see_yet_is_retried_until_it_can_replayed(
    arm: FakeArm, vault: FakeKeyVault, make_spec: Any
) -> None:
    from dataclasses import replace

    azure = _vaulted(arm, vault)
    arm.rbac.lookup_always, arm.rbac.replication_lookups = True, 3  # ARM's lookup misses it 3 times
    azure.deploy(_tls_spec(make_spec)[0])
    puts = [r for r in arm.rbac.server.requests if r.method == "PUT" and ASSIGNMENTS in r.path]
    assert len(puts) == 4 and len(arm.rbac.assignments) == 1, "3 × PrincipalNotFound, then made"
    azure.delete("minilm")
    arm.rbac.replication_lookups = 10**6  # never replicated within the deadline
    impatient = AzureProvider(replace(azure.target, role_grant_deadline_s=0.05), credential=StaticToken())
    with pytest.raises(ProviderError, match="PrincipalNotFound") as raised:
        impatient.deploy(_tls_spec(make_spec)[0])
    assert "replication delay" in str(raised.value) and "role_grant_deadline_s" in str(raised.value.hint)
    assert arm.vms == {} and arm.nsgs == {} and vault.secrets == {} and arm.rbac.assignments == {}


def test_without_the_right_to_assign_roles_the_deploy_names_it_and_leaves_nothing_replayed(
    arm: FakeArm, vault: FakeKeyVault, make_spec: Any
) -> None:
    azure = _vaulted(arm, vault)
    arm.rbac.deny_writes = True
    with pytest.raises(CredentialsError, match="roleAssignments/write") as raised:
        azure.deploy(_tls_spec(make_spec)[0])
    assert "Role Based Access Control Administrator" in raised.value.hint
    assert arm.vms == {} and arm.nsgs == {} and vault.secrets == {} and arm.rbac.assignments == {}


def test_a_vault_whose_resource_id_cannot_be_told_is_refused_before_anything_exists_replayed(
    arm: FakeArm, vault: FakeKeyVault, make_spec: Any
) -> None:
    from dataclasses import replace

    from thrifty.providers.azure_roles import vault_scope

    assert vault_scope("https://kv-1.vault.azure.net/", None, SUB, RG) == (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/kv-1"
    )
    with pytest.raises(ConfigError, match="not a Key Vault resource id"):
        vault_scope("https://kv-1.vault.azure.net/", f"/subscriptions/{SUB}/resourceGroups/{RG}", SUB, RG)
    azure = AzureProvider(replace(_target(arm), key_vault_url=vault.url), credential=StaticToken())
    with pytest.raises(ConfigError, match="key_vault_id"):
        azure.deploy(_tls_spec(make_spec)[0])  # a loopback vault URL names no vault
    assert arm.vms == {} and arm.nsgs == {} and vault.secrets == {}


def test_the_double_refuses_what_arm_refuses_for_role_assignments_replayed(
    azure: AzureProvider, arm: FakeArm
) -> None:
    from thrifty.providers.azure_roles import ROLE_API, assignment_body, assignment_path

    def put(path: str, body: dict[str, Any]) -> Any:
        return azure._arm("PUT", path, body, api=ROLE_API)

    principal = arm.rbac.new_principal()
    good = assignment_body(SUB, principal, "d", "vm")
    untyped = {"properties": {k: v for k, v in good["properties"].items() if k != "principalType"}}
    path = assignment_path(VAULT_ID, principal)
    refusals = [
        (path, {"properties": {**untyped["properties"], "principalId": str(uuid.uuid4())}}, "PrincipalNotFound"),
        (path, untyped, "PrincipalNotFound"),  # not replicated yet: ARM's lookup misses it …
        (path, untyped, "PrincipalNotFound"),  # … twice (``replication_lookups``)
        (path, {"properties": {**good["properties"], "roleDefinitionId": "Key Vault Secrets User"}},
         "InvalidRoleDefinitionId"),
        (path, {"properties": {**good["properties"], "roleDefinitionId": good["properties"]["roleDefinitionId"][:-4]
                               + "0000"}}, "RoleDefinitionDoesNotExist"),
        (f"{VAULT_ID.removesuffix('/thrifty-kv')}{ASSIGNMENTS}/{uuid.uuid4()}", good,
         "InvalidApiVersionParameter"),  # a scope naming a type but no vault
        (f"/resourceGroups/{RG}{ASSIGNMENTS}/{uuid.uuid4()}", good, "MissingSubscription"),
        (f"{VAULT_ID}{ASSIGNMENTS}/thrifty-grant", good, "InvalidRoleAssignmentId"),
    ]  # fmt: skip
    for where, body, code in refusals:
        with pytest.raises(ThriftyError, match=code):
            put(where, body)
    assert arm.rbac.assignments == {}
    put(path, untyped)  # replicated now (its second lookup was the last to miss it)
    put(path, good)  # the same assignment again changes nothing
    other = arm.rbac.new_principal()
    with pytest.raises(ThriftyError, match="RoleAssignmentUpdateNotPermitted"):
        put(path, assignment_body(SUB, other, "d", "vm"))
    with pytest.raises(ThriftyError, match="RoleAssignmentExists"):
        put(f"{VAULT_ID}{ASSIGNMENTS}/{uuid.uuid4()}", good)
    with pytest.raises(ThriftyError, match="UnmatchedPrincipalType"):
        put(assignment_path(VAULT_ID, principal, "acdd72a7-3385-48ef-bd42-f606fba81ae7"),
            {"properties": {**good["properties"], "principalType": "User"}})  # fmt: skip
    assert len(arm.rbac.assignments) == 1


def test_the_imds_double_refuses_what_imds_refuses_replayed(imds: FakeImds) -> None:
    import httpx

    url = f"{imds.url}/metadata/identity/oauth2/token"
    query = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
    imds.principal = "p"
    assert httpx.get(url, params=query, headers={"Metadata": "true"}).json()["access_token"].endswith("p")
    refused = [
        ({}, query, "Required metadata header"),
        ({"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}, query, "X-Forwarded-For"),
        ({"Metadata": "true"}, {"resource": "https://vault.azure.net"}, "api-version"),
        ({"Metadata": "true"}, {"api-version": "2018-02-01"}, "resource"),
    ]
    for headers, params, why in refused:
        answer = httpx.get(url, params=params, headers=headers)
        assert answer.status_code == 400 and why in answer.json()["error_description"]
    imds.principal = None
    assert "Identity not found" in httpx.get(url, params=query, headers={"Metadata": "true"}).text


def test_gc_lists_a_forgotten_role_assignment_and_deletes_it_replayed(
    arm: FakeArm, vault: FakeKeyVault, make_spec: Any
) -> None:
    from thrifty.providers.gc import sweep

    azure = _vaulted(arm, vault)
    azure.deploy(_tls_spec(make_spec)[0])
    azure.deploy(_tls_spec(make_spec)[0].with_changes(name="kept"))
    live = [("azure", "kept")]
    arm.vms.pop("thrifty-minilm-0")  # the VM went outside thrifty: its assignment stays behind
    azure._delete_nsg("thrifty-minilm")
    listed = sweep([azure], live, grace_s=0, dry_run=True)
    kinds = sorted((o.resource.kind, o.resource.deployment_name) for o in listed)
    assert kinds == [("key-vault-secret", "minilm"), ("role-assignment", "minilm")]
    grant = next(o.resource for o in listed if o.resource.kind == "role-assignment")
    assert grant.details["vm"] == "thrifty-minilm-0" and grant.created_at is not None
    assert len(arm.rbac.assignments) == 2, "a dry run deletes nothing"
    sweep([azure], live, grace_s=0)
    assert [a["properties"]["description"] for a in arm.rbac.assignments.values()] == [
        "thrifty:deployment=kept vm=thrifty-kept-0"
    ]
    assert sweep([azure], live, grace_s=0, dry_run=True) == []


# -- the VMs' role on the artifact container (an az:// store) -------------------------------------------
#: the storage account the az:// tests' VMs read (in the target's resource group)
ACCOUNT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/thriftyblobs"
)
CONTAINER_ID = f"{ACCOUNT_ID}/blobServices/default/containers/models"
BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"


def _blob_store(replay_server: ReplayServer, arm: FakeArm, **target: Any) -> tuple[AzureProvider, Any]:
    """A provider whose VMs read ``az://thriftyblobs/models/thrifty``, and the Blob double that lets a
    managed identity read only through its role assignments in ``arm``."""
    from dataclasses import replace

    from tests.unit.providers.storage_doubles import FakeAzureBlob, StoredObject

    blob = FakeAzureBlob(replay_server, writers={TOKEN}, containers={"models": {}}, rbac=arm.rbac,
                         account_id=ACCOUNT_ID)  # fmt: skip
    when = datetime.now(UTC)
    blob.containers["models"]["thrifty/sha256/ab/ab"] = StoredObject(b"weights", "Hot", when, when, 1)
    boot = replace(
        TEST_BOOT, artifact_store_url="az://thriftyblobs/models/thrifty", store_endpoint_url=blob.url
    )
    return AzureProvider(replace(_target(arm), boot=boot, **target), credential=StaticToken()), blob


def _read_as(blob: Any, principal: str) -> int:
    import httpx

    headers = {"Authorization": f"Bearer {MI_TOKEN_PREFIX}{principal}", "x-ms-version": "2021-08-06"}
    return httpx.get(f"{blob.url}/models/thrifty/sha256/ab/ab", headers=headers).status_code


def test_an_az_store_gives_each_vm_storage_blob_data_reader_on_its_container_replayed(
    replay_server: ReplayServer, arm: FakeArm, make_spec: Any
) -> None:
    azure, blob = _blob_store(replay_server, arm)
    azure.deploy(_spec(make_spec, replicas=2))
    granted = _assignments_of(arm)
    assert sorted(granted) == ["thrifty-minilm-0", "thrifty-minilm-1"] and len(arm.rbac.assignments) == 2
    props = granted["thrifty-minilm-1"]["properties"]
    assert props["scope"] == CONTAINER_ID and props["principalType"] == "ServicePrincipal"
    assert props["roleDefinitionId"].endswith(f"/roleDefinitions/{BLOB_READER}")
    assert props["description"] == "thrifty:deployment=minilm vm=thrifty-minilm-1"
    first = arm.vms["thrifty-minilm-0"]["identity"]["principalId"]
    assert _read_as(blob, first) == 200, "the VM's identity reads the variant"
    assert _read_as(blob, arm.rbac.new_principal()) == 403, "an identity nobody granted anything"
    azure.deploy(_spec(make_spec, replicas=2))
    assert len(arm.rbac.assignments) == 2, "a rerun makes the same assignments, not new ones"
    azure.scale("minilm", 1)
    assert sorted(_assignments_of(arm)) == ["thrifty-minilm-0"]
    azure.delete("minilm")
    assert arm.rbac.assignments == {} and arm.vms == {} and _read_as(blob, first) == 403


def test_with_a_vault_and_an_az_store_each_vm_gets_both_roles_replayed(
    replay_server: ReplayServer, arm: FakeArm, vault: FakeKeyVault, make_spec: Any
) -> None:
    azure, _ = _blob_store(replay_server, arm, key_vault_url=vault.url, key_vault_id=VAULT_ID)
    azure.deploy(_tls_spec(make_spec)[0])
    principal = arm.vms["thrifty-minilm-0"]["identity"]["principalId"]
    held = sorted((a["properties"]["scope"], a["properties"]["roleDefinitionId"].rsplit("/", 1)[1])
                  for a in arm.rbac.assignments.values() if a["properties"]["principalId"] == principal)  # fmt: skip
    assert held == sorted([(VAULT_ID, "4633458b-17de-408a-b874-0445c86b69e6"), (CONTAINER_ID, BLOB_READER)])
    azure.delete("minilm")
    assert arm.rbac.assignments == {}


def test_without_the_right_to_assign_on_the_container_the_deploy_names_it_replayed(
    replay_server: ReplayServer, arm: FakeArm, make_spec: Any
) -> None:
    azure, _ = _blob_store(replay_server, arm)
    arm.rbac.deny_writes = True
    with pytest.raises(CredentialsError, match="roleAssignments/write") as raised:
        azure.deploy(_spec(make_spec))
    assert "on the artifact container" in str(raised.value) and "artifact container" in raised.value.hint
    assert arm.vms == {} and arm.nsgs == {} and arm.rbac.assignments == {}


def test_a_storage_account_id_of_another_account_is_refused_before_anything_exists_replayed(
    replay_server: ReplayServer, arm: FakeArm, make_spec: Any
) -> None:
    from thrifty.providers.azure_roles import container_scope

    other = ACCOUNT_ID.replace("/resourceGroups/thrifty-rg/", "/resourceGroups/data-rg/")
    assert container_scope("az://thriftyblobs/models/p", other, SUB, RG) == (
        f"{other}/blobServices/default/containers/models"
    )
    assert container_scope("gs://b/p", None, SUB, RG) is None
    azure, _ = _blob_store(replay_server, arm, storage_account_id=other.replace("thriftyblobs", "elsewhere"))
    with pytest.raises(ConfigError, match="storage_account_id"):
        azure.deploy(_spec(make_spec))
    assert arm.vms == {} and arm.nsgs == {}


def test_gc_lists_a_forgotten_container_role_assignment_and_deletes_it_replayed(
    replay_server: ReplayServer, arm: FakeArm, make_spec: Any
) -> None:
    from thrifty.providers.gc import sweep

    azure, _ = _blob_store(replay_server, arm)
    azure.deploy(_spec(make_spec, replicas=1))
    arm.vms.pop("thrifty-minilm-0")  # the VM went outside thrifty: its assignment stays behind
    azure._delete_nsg("thrifty-minilm")
    (listed,) = sweep([azure], [], grace_s=0, dry_run=True)
    assert listed.resource.kind == "role-assignment" and listed.resource.details["scope"] == CONTAINER_ID
    sweep([azure], [], grace_s=0)
    assert arm.rbac.assignments == {}
