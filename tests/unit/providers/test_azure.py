"""Azure provider through azure-mgmt-compute, base_url pointed at a local ARM replay server.

REPLAYED: there is no Azure here. ``FakeArm`` answers with real-shaped ARM JSON, including
long-running operations (201/202 + ``Azure-AsyncOperation`` → ``InProgress`` → ``Succeeded`` /
``Failed``) and the error bodies ARM sends (QuotaExceeded, SkuNotAvailable, AllocationFailed,
AuthorizationFailed). The credential is ``StaticToken`` (a class with ``get_token``); plain http
on 127.0.0.1 works because the provider passes ``enforce_https=False`` for loopback base URLs
only (azure-core's bearer policy refuses http otherwise). Every test ends in ``_replayed``.
"""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any

import pytest

from tests.unit.providers.conftest import TEST_BOOT
from tests.unit.providers.replay import ReplayServer, Request
from thrifty.errors import CapacityError, CredentialsError, QuotaExceededError
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
        self, status: int, body: Any, result: str, error: dict[str, str] | None = None
    ) -> tuple[Any, ...]:
        op_id = f"op-{next(self.ids)}"
        self.ops[op_id] = {"name": op_id, "result": result, "error": error}
        url = f"{self.url}{OPS}/{op_id}?api-version=2024-07-01"
        return status, body, {"Azure-AsyncOperation": url, "Location": url}

    def get_op(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        op_id = req.path.rsplit("/", 1)[1]
        op = self.ops[op_id]
        self.polls[op_id] = self.polls.get(op_id, 0) + 1
        body: dict[str, Any] = {"name": op_id, "startTime": "2026-11-26T10:00:00.0000000+00:00"}
        if self.polls[op_id] < 2:
            return 200, {**body, "status": "InProgress"}
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
        props = {**body["properties"], "provisioningState": "Creating", "vmId": f"vm-{next(self.ids)}",
                 "timeCreated": "2026-11-26T10:00:00.0000000+00:00"}  # fmt: skip
        vm = {"id": f"{VMS}/{name}", "name": name, "type": "Microsoft.Compute/virtualMachines",
              "location": body["location"], "tags": body.get("tags", {}), "properties": props}  # fmt: skip
        spot_refused = self.spot_capacity_out and body["properties"].get("priority") == "Spot"
        if body["properties"]["hardwareProfile"]["vmSize"] in self.allocation_fails_for or spot_refused:
            self.vms[name] = vm  # ARM keeps the failed VM resource: the caller must delete it
            props["provisioningState"] = "Failed"
            error = {"code": "AllocationFailed", "message": "Allocation failed. We do not have sufficient capacity "
                     "for the requested VM size in this region."}  # fmt: skip
            return self._lro(201, vm, "Failed", error)
        self.vms[name] = vm
        return self._lro(201, vm, "Succeeded")

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
            view["properties"]["instanceView"] = {"statuses": [
                {"code": "ProvisioningState/succeeded", "level": "Info"},
                {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"}]}  # fmt: skip
        return 200, view

    def _view(self, vm: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in vm.items() if not k.startswith("_")}
        state = view["properties"]["provisioningState"]
        view["properties"] = {
            **view["properties"],
            "provisioningState": "Failed" if state == "Failed" else "Succeeded",
        }
        return view

    def patch_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        vm = self.vms[self._name(req)]
        vm["tags"] = req.body["tags"]
        return 200, self._view(vm)

    def delete_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        if self.vms.pop(self._name(req), None) is None:
            return 204, None
        return self._lro(202, None, "Succeeded")

    def post_vm(self, req: Request) -> tuple[Any, ...]:
        self._check(req)
        name, verb = req.path.removeprefix(VMS + "/").split("/")
        self.vms[name]["_power"] = {"deallocate": "deallocated", "start": "running"}[verb]
        return self._lro(202, None, "Succeeded")


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
