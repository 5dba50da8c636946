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
only (azure-core's bearer policy refuses http otherwise). Every test ends in ``_replayed``.
"""

from __future__ import annotations

import base64
import copy
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.providers.conftest import TEST_BOOT
from tests.unit.providers.replay import ReplayServer, Request, sold_offers
from thrifty.errors import CapacityError, ConfigError, CredentialsError, QuotaExceededError
from thrifty.providers.azure import AzureProvider, AzureTarget
from thrifty.providers.base import PriceModel, Provider, provider_class

pytestmark = pytest.mark.replayed
SUB = "00000000-0000-0000-0000-000000000001"
RG = "thrifty-rg"
VMS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"
OPS = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/operations"
TOKEN = "azure-access-token-never-logged"


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
        server.route("GET", OPS, self.get_op)
        server.route("GET", VMS, self.get_vm)
        server.route("PUT", VMS, self.put_vm)
        server.route("PATCH", VMS, self.patch_vm)
        server.route("DELETE", VMS, self.delete_vm)
        server.route("POST", VMS, self.post_vm)

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
        refused = self._refuse_size(name, body)
        if refused is not None:
            return refused
        props = {**body["properties"], "provisioningState": "Creating", "vmId": f"vm-{next(self.ids)}",
                 "timeCreated": "2026-11-26T10:00:00.0000000+00:00"}  # fmt: skip
        vm = {"id": f"{VMS}/{name}", "name": name, "type": "Microsoft.Compute/virtualMachines",
              "location": body["location"], "tags": body.get("tags", {}), "properties": props}  # fmt: skip
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

        return self._lro(202, None, "Succeeded", done=gone)

    def post_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        name, verb = req.path.removeprefix(VMS + "/").split("/")
        vm = self.vms[name]
        vm["_power"] = {"deallocate": "deallocating", "start": "starting"}[verb]
        final = {"deallocate": "deallocated", "start": "running"}[verb]
        return self._lro(202, None, "Succeeded", done=lambda: vm.update(_power=final))


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
    (resource,) = azure.list_managed()
    assert (resource.kind, resource.id, resource.region, resource.deployment_name) == (
        "virtual-machine", "thrifty-minilm-0", "eastus", "minilm")  # fmt: skip
    assert resource.created_at is not None and resource.created_at.utcoffset() is not None
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
