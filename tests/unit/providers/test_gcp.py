"""GCP provider through google-cloud-compute's REST transport (AnonymousCredentials, api_endpoint).

REPLAYED: there is no Compute Engine here. ``FakeGce`` answers the calls the provider makes with
real-shaped JSON (compute#operation, compute#instanceAggregatedList, the error bodies GCE sends),
and refuses what GCE refuses:

- a machine type its zone does not sell (the zones come from the shared price snapshot): 400
  ``invalid`` "Machine type with name '…' does not exist in zone '…'";
- a GPU VM (guestAccelerators, or an a2/a3/a4/g2 machine type) that asks for live migration
  (400 badRequest "Instances with guest accelerators do not support live migration.") and an
  accelerator type its zone does not sell (404 notFound "The resource '.../acceleratorTypes/...'
  was not found");
- a quota hit is an HTTP 403 with reason quotaExceeded; a stocked-out zone ends its operation with
  ZONE_RESOURCE_POOL_EXHAUSTED;
- firewall rules (``global/firewalls``, global operations): a name that is not RFC 1035, a
  priority outside 0–65535, a rule with both or neither of ``allowed``/``denied``, a source range
  that is not a CIDR, a second rule of the same name (409 alreadyExists), and an instance network
  tag that is not RFC 1035. Like GCE it *accepts* an ingress rule with no source — and opens it to
  0.0.0.0/0 — and one with no ``targetTags`` (it applies to every VM): the tests assert thrifty never
  sends either.

Zones are listed (``zones``) from the price snapshot's zones, all UP.

Every mutation answers a zonal operation that stays PENDING, then RUNNING, and is DONE only on the
``polls_to_done``-th poll; its effect lands then (an instance is PROVISIONING until its insert is
DONE, STOPPING until its stop is, and is still listed until its delete is). An instance has an
external IP (``accessConfigs[].natIP``) only when the insert asked for one. Every test here ends in
``_replayed``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.unit.providers.conftest import ALLOWED_CIDRS, TEST_BOOT
from tests.unit.providers.replay import ReplayServer, Request, sold_offers
from thrifty.errors import CapacityError, ConfigError, QuotaExceededError
from thrifty.providers.base import PriceModel, Provider, provider_class
from thrifty.providers.gcp import GcpProvider, GcpTarget
from thrifty.providers.specs import deploy_first_available

pytestmark = pytest.mark.replayed
PROJECT = "thrifty-test"
BASE = f"/compute/v1/projects/{PROJECT}"


class FakeGce:
    def no_secrets(self, req: Request) -> tuple[int, Any]:
        """Secret Manager of a project that holds no secret (``FakeSecretManager`` serves real ones):
        its list is ``{}``, like the API's empty answer; any one secret is a 404."""
        if req.path.rstrip("/") == f"/v1/projects/{PROJECT}/secrets":
            return 200, {}
        return 404, {"error": {"code": 404, "message": "Secret not found.", "status": "NOT_FOUND"}}

    def __init__(self, server: ReplayServer) -> None:
        self.url = server.url
        self.server = server
        self.instances: dict[str, dict[str, dict[str, Any]]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.ids = itertools.count(1000)
        self.stocked_out: set[str] = set()
        self.spot_stocked_out: set[str] = set()
        self.quota_cpus: int | None = None
        #: zone → machine types it sells (the shared price snapshot)
        self.machine_types = sold_offers("gcp")
        #: an operation is PENDING when returned, RUNNING on the polls before this one, DONE on it
        self.polls_to_done = 2
        self.addresses = itertools.count(3)
        #: zone → GCE accelerator types it sells (tests fill it from the price snapshot)
        self.accelerator_types: dict[str, set[str]] = {}
        self.firewalls: dict[str, dict[str, Any]] = {}
        server.route("GET", f"{BASE}/zones", self.list_zones)
        server.route("GET", f"/v1/projects/{PROJECT}/secrets", self.no_secrets)
        server.route("GET", f"{BASE}/global/firewalls", self.get_firewall)
        server.route("POST", f"{BASE}/global/firewalls", self.insert_firewall)
        server.route("PATCH", f"{BASE}/global/firewalls/", self.patch_firewall)
        server.route("DELETE", f"{BASE}/global/firewalls/", self.delete_firewall)
        server.route("GET", f"{BASE}/global/operations/", self.get_global_operation)
        server.route("GET", f"{BASE}/aggregated/instances", self.aggregated)
        server.route("GET", f"{BASE}/zones/", self.get)
        server.route("POST", f"{BASE}/zones/", self.post)
        server.route("DELETE", f"{BASE}/zones/", self.delete)

    def _operation(
        self,
        zone: str,
        kind: str,
        target: str,
        error: str | None = None,
        done: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """A zonal operation, PENDING until polled; ``done`` is its effect, applied when DONE."""
        name = f"operation-{next(self.ids)}-{kind}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(next(self.ids)),
            "name": name,
            "zone": f"https://www.googleapis.com{BASE}/zones/{zone}",
            "operationType": kind,
            "targetLink": f"https://www.googleapis.com{BASE}/zones/{zone}/instances/{target}",
            "status": "PENDING",
            "progress": 0,
            "insertTime": "2026-11-26T02:00:00.000-08:00",
            "_done": done,
        }
        if error:
            op["_error"] = error
        self.operations[name] = op
        return _public(op)

    def post(self, req: Request) -> tuple[int, Any]:
        zone, rest = req.path.removeprefix(f"{BASE}/zones/").split("/", 1)
        if rest == "instances":
            return self._insert(zone, req)
        _, instance, verb = rest.split("/")
        inst = self.instances.get(zone, {}).get(instance)
        if inst is None:
            return 404, _error(
                404,
                f"The resource 'projects/{PROJECT}/zones/{zone}/instances/{instance}' was not found",
                "notFound",
            )
        if verb == "setLabels":
            assert req.body["labelFingerprint"] == inst["labelFingerprint"], "stale fingerprint: 412 on GCE"
            inst["labels"] = req.body["labels"]
            inst["labelFingerprint"] = f"fp-{next(self.ids)}"
            return 200, self._operation(zone, verb, instance)
        inst["status"] = {"stop": "STOPPING", "start": "STAGING"}[verb]
        final = {"stop": "TERMINATED", "start": "RUNNING"}[verb]
        return 200, self._operation(zone, verb, instance, done=lambda: inst.update(status=final))

    def _insert(self, zone: str, req: Request) -> tuple[int, Any]:
        body = req.body
        assert req.query.get("requestId"), "every insert carries a requestId"
        if self.quota_cpus is not None and sum(map(len, self.instances.values())) >= self.quota_cpus:
            message = "Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1."
            return 403, _error(403, message, "quotaExceeded", domain="usageLimits")
        refused = (
            self._refuse_machine_type(zone, body) or self._refuse_gpu(zone, body) or self._refuse_tags(body)
        )
        if refused is not None:
            return refused
        spot = body.get("scheduling", {}).get("provisioningModel") == "SPOT"
        if zone in self.stocked_out or (spot and zone in self.spot_stocked_out):
            message = (
                f"The zone 'projects/{PROJECT}/zones/{zone}' does not have enough resources available to "
                "fulfill the request.  Try a different zone, or try again later."
            )
            return 200, self._operation(zone, "insert", body["name"], error=message)
        inst = {
            **body,
            "kind": "compute#instance",
            "id": str(next(self.ids)),
            "status": "PROVISIONING",
            "labelFingerprint": "42WmSpB8rSM=",
            "creationTimestamp": "2026-11-26T02:00:00.000-08:00",
            "zone": f"https://www.googleapis.com{BASE}/zones/{zone}",
            "networkInterfaces": [self._nic(nic) for nic in body["networkInterfaces"]],
        }
        self.instances.setdefault(zone, {})[body["name"]] = inst
        return 200, self._operation(zone, "insert", body["name"], done=lambda: inst.update(status="RUNNING"))

    def _nic(self, asked: dict[str, Any]) -> dict[str, Any]:
        """A private IP always; an external one only for an accessConfig the insert asked for."""
        nic = {"network": asked["network"], "networkIP": f"10.128.0.{next(self.addresses)}"}
        configs = [
            {"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": c.get("name", "External NAT"),
             "natIP": f"34.1.2.{next(self.addresses)}", "networkTier": c.get("networkTier", "PREMIUM")}
            for c in asked.get("accessConfigs") or []
        ]  # fmt: skip
        return {**nic, "accessConfigs": configs} if configs else nic

    def _refuse_machine_type(self, zone: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """GCE's answer to a machine type the zone does not sell (or that does not exist at all)."""
        machine = body["machineType"].rsplit("/", 1)[-1]
        if f"zones/{zone}/machineTypes/" in body["machineType"] and machine in self.machine_types.get(
            zone, ()
        ):
            return None
        message = (
            f"Invalid value for field 'resource.machineType': '{body['machineType']}'. "
            f"Machine type with name '{machine}' does not exist in zone '{zone}'."
        )
        return 400, _error(400, message, "invalid")

    def _refuse_gpu(self, zone: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """What GCE answers a GPU VM that asks for live migration or a GPU its zone lacks."""
        accelerators = body.get("guestAccelerators") or []
        machine = body["machineType"].rsplit("/", 1)[-1]
        bundled = machine.split("-")[0] in ("a2", "a3", "a4", "g2")
        maintenance = body.get("scheduling", {}).get("onHostMaintenance", "MIGRATE")  # GCE's default
        if (accelerators or bundled) and maintenance == "MIGRATE":
            message = "Instances with guest accelerators do not support live migration."
            return 400, _error(400, message, "badRequest")
        for accelerator in accelerators:
            path = accelerator["acceleratorType"]
            name = path.rsplit("/", 1)[-1]
            if f"zones/{zone}/acceleratorTypes/" not in path or name not in self.accelerator_types.get(
                zone, set()
            ):
                message = (
                    f"The resource 'projects/{PROJECT}/zones/{zone}/acceleratorTypes/{name}' was not found"
                )
                return 404, _error(404, message, "notFound")
        return None

    @staticmethod
    def _refuse_tags(body: dict[str, Any]) -> tuple[int, Any] | None:
        for i, tag in enumerate(body.get("tags", {}).get("items", [])):
            if not _RFC1035.fullmatch(tag):
                message = f"Invalid value for field 'resource.tags.items[{i}]': '{tag}'. Must be a match of regex '{_RFC1035.pattern}'"
                return 400, _error(400, message, "invalid")
        return None

    # -- zones, firewall rules and global operations ------------------------------------------
    def list_zones(self, req: Request) -> tuple[int, Any]:
        zones = sorted(z for z in self.machine_types if _ZONE_NAME.fullmatch(z))
        items = [{"kind": "compute#zone", "name": z, "status": "UP",
                  "region": f"https://www.googleapis.com{BASE}/regions/{z.rsplit('-', 1)[0]}"} for z in zones]  # fmt: skip
        return 200, {"kind": "compute#zoneList", "id": f"projects/{PROJECT}/zones", "items": items}

    def get_firewall(self, req: Request) -> tuple[int, Any]:
        name = req.path.removeprefix(f"{BASE}/global/firewalls").strip("/")
        if not name:
            return 200, {"kind": "compute#firewallList", "items": list(self.firewalls.values())}
        if name not in self.firewalls:
            message = f"The resource 'projects/{PROJECT}/global/firewalls/{name}' was not found"
            return 404, _error(404, message, "notFound")
        return 200, self.firewalls[name]

    def insert_firewall(self, req: Request) -> tuple[int, Any]:
        body = req.body
        refused = _refuse_firewall(body)
        if refused is not None:
            return refused
        if body["name"] in self.firewalls:
            message = f"The resource 'projects/{PROJECT}/global/firewalls/{body['name']}' already exists"
            return 409, _error(409, message, "alreadyExists")
        rule = {"direction": "INGRESS", "priority": 1000, "network": "global/networks/default", **body,
                "kind": "compute#firewall", "id": str(next(self.ids)),
                "creationTimestamp": "2026-11-26T02:00:00.000-08:00"}  # fmt: skip
        if rule["direction"] == "INGRESS" and not any(
            rule.get(k) for k in ("sourceRanges", "sourceTags", "sourceServiceAccounts")
        ):
            rule["sourceRanges"] = ["0.0.0.0/0"]  # what GCE does with a rule that names no source
        return 200, self._global_operation(
            "insert", body["name"], lambda: self.firewalls.update({body["name"]: rule})
        )

    def patch_firewall(self, req: Request) -> tuple[int, Any]:
        name = req.path.rsplit("/", 1)[1]
        rule = self.firewalls.get(name)
        if rule is None:
            return 404, _error(
                404, f"The resource 'projects/{PROJECT}/global/firewalls/{name}' was not found", "notFound"
            )
        merged = {**rule, **req.body}
        refused = _refuse_firewall(merged)
        if refused is not None:
            return refused
        return 200, self._global_operation("patch", name, lambda: self.firewalls.update({name: merged}))

    def delete_firewall(self, req: Request) -> tuple[int, Any]:
        name = req.path.rsplit("/", 1)[1]
        if name not in self.firewalls:
            return 404, _error(
                404, f"The resource 'projects/{PROJECT}/global/firewalls/{name}' was not found", "notFound"
            )
        return 200, self._global_operation("delete", name, lambda: self.firewalls.pop(name, None))

    def _global_operation(self, kind: str, target: str, done: Callable[[], Any]) -> dict[str, Any]:
        name = f"operation-{next(self.ids)}-{kind}"
        op = {"kind": "compute#operation", "id": str(next(self.ids)), "name": name, "operationType": kind,
              "targetLink": f"https://www.googleapis.com{BASE}/global/firewalls/{target}",
              "status": "PENDING", "progress": 0, "_done": done,
              "selfLink": f"https://www.googleapis.com{BASE}/global/operations/{name}"}  # fmt: skip
        self.operations[name] = op
        return _public(op)

    def get_global_operation(self, req: Request) -> tuple[int, Any]:
        name = req.path.rsplit("/", 1)[1]
        op = self.operations[name]
        assert "zone" not in op, "a global operation is polled through globalOperations"
        self.polls[name] = self.polls.get(name, 0) + 1
        if op["status"] != "DONE" and self.polls[name] >= self.polls_to_done:
            op.update(status="DONE", progress=100)
            op["_done"]()
        elif op["status"] != "DONE":
            op.update(status="RUNNING", progress=50)
        return 200, _public(op)

    def get(self, req: Request) -> tuple[int, Any]:
        _, rest = req.path.removeprefix(f"{BASE}/zones/").split("/", 1)
        kind, name = rest.split("/", 1)
        assert kind == "operations"
        op = self.operations[name]
        self.polls[name] = self.polls.get(name, 0) + 1
        if op["status"] != "DONE" and self.polls[name] >= self.polls_to_done:
            op.update(status="DONE", progress=100, endTime="2026-11-26T02:00:09.000-08:00")
            if "_error" in op:
                op["error"] = {"errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": op["_error"]}]}
                op["httpErrorStatusCode"] = 503
                op["httpErrorMessage"] = "SERVICE UNAVAILABLE"
            elif op["_done"] is not None:
                op["_done"]()
        elif op["status"] != "DONE":
            op.update(status="RUNNING", progress=50, startTime="2026-11-26T02:00:01.000-08:00")
        return 200, _public(op)

    def delete(self, req: Request) -> tuple[int, Any]:
        zone, rest = req.path.removeprefix(f"{BASE}/zones/").split("/", 1)
        name = rest.split("/", 1)[1]
        inst = self.instances.get(zone, {}).get(name)
        if inst is None:
            return 404, _error(
                404,
                f"The resource 'projects/{PROJECT}/zones/{zone}/instances/{name}' was not found",
                "notFound",
            )
        inst["status"] = "STOPPING"  # listed until the delete is DONE
        return 200, self._operation(zone, "delete", name, done=lambda: self.instances[zone].pop(name, None))

    def aggregated(self, req: Request) -> tuple[int, Any]:
        wanted = dict(re.findall(r'labels\.([\w-]+) = "([^"]*)"', req.query.get("filter", [""])[0]))
        items: dict[str, Any] = {}
        for zone, instances in self.instances.items():
            chosen = [
                i
                for i in instances.values()
                if all(i.get("labels", {}).get(k) == v for k, v in wanted.items())
            ]
            items[f"zones/{zone}"] = {"instances": chosen} if chosen else {
                "warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope"}}  # fmt: skip
        return 200, {"kind": "compute#instanceAggregatedList", "id": f"projects/{PROJECT}/aggregated/instances",
                     "items": items}  # fmt: skip


_RFC1035 = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
_ZONE_NAME = re.compile(r"[a-z]+-[a-z]+\d+-[a-z]")


def _refuse_firewall(body: dict[str, Any]) -> tuple[int, Any] | None:
    """GCE's 400s for a firewall rule: bad name, priority, allowed/denied, source range."""
    import ipaddress

    name, priority = body.get("name", ""), body.get("priority", 1000)
    problems = []
    if not _RFC1035.fullmatch(name):
        problems.append(
            f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex '{_RFC1035.pattern}'"
        )
    if not 0 <= int(priority) <= 65535:
        problems.append(
            f"Invalid value for field 'resource.priority': '{priority}'. Must be less than or equal to 65535"
        )
    if bool(body.get("allowed")) == bool(body.get("denied")):
        problems.append(
            "Invalid value for field 'resource': exactly one of 'allowed' or 'denied' must be specified"
        )
    for i, cidr in enumerate(body.get("sourceRanges") or []):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(
                f"Invalid value for field 'resource.sourceRanges[{i}]': '{cidr}'. Must be a CIDR address range"
            )
    return (400, _error(400, problems[0], "invalid")) if problems else None


def _public(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if not k.startswith("_")}


def _error(code: int, message: str, reason: str, domain: str = "global") -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }


@pytest.fixture
def gce(replay_server: ReplayServer) -> FakeGce:
    return FakeGce(replay_server)


@pytest.fixture
def gcp(gce: FakeGce) -> GcpProvider:
    from google.auth.credentials import AnonymousCredentials

    target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=TEST_BOOT)
    return GcpProvider(target, credentials=AnonymousCredentials())


def _spec(make_spec: Any, **kw: Any) -> Any:
    return make_spec(**{"region": "us-central1", "instance_type": "e2-standard-2", **kw})


def test_registered_and_protocol_replayed(gcp: GcpProvider) -> None:
    assert provider_class("gcp") is GcpProvider
    assert isinstance(gcp, Provider)


def test_deploy_spot_polls_operations_to_done_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    status = gcp.deploy(_spec(make_spec, on_demand_floor=1))
    assert (status.state, status.replicas_ready) == ("running", 2)
    zone = gce.instances["us-central1-a"]
    floor, spot = zone["thrifty-minilm-0"], zone["thrifty-minilm-1"]
    nat_ip = floor["networkInterfaces"][0]["accessConfigs"][0]["natIP"]
    assert status.endpoint_url == f"http://{nat_ip}:8080" and nat_ip.startswith("34.")
    assert floor["scheduling"]["provisioningModel"] == "STANDARD"
    assert spot["scheduling"] == {
        "provisioningModel": "SPOT", "instanceTerminationAction": "DELETE",
        "automaticRestart": False, "onHostMaintenance": "TERMINATE",
    }  # fmt: skip
    assert spot["labels"] == {"thrifty-managed": "true", "thrifty-deployment": "minilm",
                              "thrifty-slot": "1", "thrifty-market": "spot", "thrifty-replicas": "2"}  # fmt: skip
    assert spot["machineType"] == "zones/us-central1-a/machineTypes/e2-standard-2"
    assert all(count == 2 for count in gce.polls.values()), "each operation polled until DONE"
    user_data = next(i["value"] for i in spot["metadata"]["items"] if i["key"] == "user-data")
    assert user_data.startswith("#cloud-config") and "watch --deployment minilm --cloud gcp" in user_data


def test_deploy_twice_scale_hibernate_wake_delete_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gcp.deploy(_spec(make_spec))
    gcp.deploy(_spec(make_spec))
    assert sorted(gce.instances["us-central1-a"]) == ["thrifty-minilm-0", "thrifty-minilm-1"]
    assert gcp.scale("minilm", 3).replicas_ready == 3
    assert gcp.scale("minilm", 1).replicas_ready == 1
    assert gcp.hibernate("minilm").state == "hibernated"
    assert gcp.wake("minilm").state == "running"
    gcp.delete("minilm")
    gcp.delete("minilm")
    assert gce.instances["us-central1-a"] == {}
    assert gcp.status("minilm").state == "deleted"


def test_stockout_is_a_capacity_error_and_leaves_nothing_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gce.stocked_out.add("us-central1-a")
    with pytest.raises(CapacityError, match="ZONE_RESOURCE_POOL_EXHAUSTED") as info:
        gcp.deploy(_spec(make_spec))
    assert info.value.hint and "next candidate" in info.value.hint
    assert gcp.list_managed() == []


def test_capacity_error_falls_back_to_the_next_candidate_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gce.stocked_out.add("us-central1-a")
    candidates = [_spec(make_spec, region="us-central1-a"), _spec(make_spec, region="us-central1-b")]
    chosen, status, skipped = deploy_first_available(candidates, lambda spec: gcp)
    assert chosen.region == "us-central1-b" and status.replicas_ready == 2
    assert len(skipped) == 1 and "ZONE_RESOURCE_POOL_EXHAUSTED" in skipped[0]
    assert sorted(gce.instances["us-central1-b"]) == ["thrifty-minilm-0", "thrifty-minilm-1"]
    assert gce.instances.get("us-central1-a", {}) == {}


def test_quota_exceeded_half_way_rolls_back_replayed(gcp: GcpProvider, gce: FakeGce, make_spec: Any) -> None:
    gce.quota_cpus = 1
    with pytest.raises(QuotaExceededError, match="Quota 'CPUS' exceeded") as info:
        gcp.deploy(_spec(make_spec))
    assert info.value.hint and "quota" in info.value.hint.lower()
    assert gce.instances["us-central1-a"] == {}, "the first instance must be deleted again"


def test_every_candidate_out_of_capacity_names_them_all_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gce.stocked_out |= {"us-central1-a", "us-central1-b"}
    candidates = [_spec(make_spec, region=z) for z in ("us-central1-a", "us-central1-b")]
    with pytest.raises(CapacityError, match="2 tried") as info:
        deploy_first_available(candidates, lambda spec: gcp)
    assert info.value.hint and info.value.hint.count("ZONE_RESOURCE_POOL_EXHAUSTED") == 2


def test_list_managed_and_delete_resource_replayed(gcp: GcpProvider, gce: FakeGce, make_spec: Any) -> None:
    gcp.deploy(_spec(make_spec, replicas=1, price_model=PriceModel.ON_DEMAND))
    found = gcp.list_managed()
    assert [(r.kind, r.id, r.region, r.deployment_name) for r in found] == [
        ("instance", "thrifty-minilm-0", "us-central1-a", "minilm"),
        ("firewall", "thrifty-minilm", "global", "minilm")]  # fmt: skip
    assert all(r.created_at is not None and r.created_at.utcoffset() is not None for r in found)
    for resource in found:
        gcp.delete_resource(resource)
    assert gcp.list_managed() == []


# -- what GCE refuses, and what it takes time for ---------------------------------------------------
def _sold_elsewhere(gce: FakeGce, zone: str) -> str:
    """A machine type the snapshot sells in some us-central1 zone but not in ``zone``."""
    here = gce.machine_types[zone]
    return min(
        t for z, types in gce.machine_types.items() if z.startswith("us-central1-") for t in types - here
    )


def test_a_machine_type_the_zone_does_not_sell_is_a_capacity_error_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    machine = _sold_elsewhere(gce, "us-central1-a")
    with pytest.raises(CapacityError, match=f"Machine type with name '{machine}' does not exist") as info:
        gcp.deploy(_spec(make_spec, region="us-central1-a", instance_type=machine))
    assert "us-central1-a" in str(info.value) and info.value.hint and "next candidate" in info.value.hint
    assert gce.instances == {} and gcp.list_managed() == []


def test_a_machine_type_not_sold_falls_through_to_a_zone_that_sells_it_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    machine = _sold_elsewhere(gce, "us-central1-a")
    selling = min(
        z for z, types in gce.machine_types.items() if z.startswith("us-central1-") and machine in types
    )
    candidates = [
        _spec(make_spec, region=z, instance_type=machine, replicas=1) for z in ("us-central1-a", selling)
    ]
    chosen, status, skipped = deploy_first_available(candidates, lambda spec: gcp)
    assert (chosen.region, status.replicas_ready) == (selling, 1)
    assert len(skipped) == 1 and "does not exist in zone 'us-central1-a'" in skipped[0]
    assert gce.instances.get("us-central1-a", {}) == {}


def test_slow_operations_are_polled_until_done_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gce.polls_to_done = 4  # PENDING, then RUNNING for three polls, DONE on the fourth
    status = gcp.deploy(_spec(make_spec, price_model=PriceModel.ON_DEMAND))
    assert (status.state, status.replicas_ready) == ("running", 2)
    assert {i["status"] for i in gce.instances["us-central1-a"].values()} == {"RUNNING"}
    assert sorted(gce.polls.values()) == [4, 4, 4], (
        "each insert (2 VMs, 1 rule) waited for, not taken as done"
    )
    assert gcp.hibernate("minilm").state == "hibernated"
    assert {i["status"] for i in gce.instances["us-central1-a"].values()} == {"TERMINATED"}
    gcp.delete("minilm")
    assert gce.instances["us-central1-a"] == {} and gcp.status("minilm").state == "deleted"


def test_no_external_ip_unless_asked_for_replayed(gce: FakeGce, make_spec: Any) -> None:
    from google.auth.credentials import AnonymousCredentials

    target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=TEST_BOOT, public_ip=False)
    private = GcpProvider(target, credentials=AnonymousCredentials())
    status = private.deploy(_spec(make_spec, replicas=1, price_model=PriceModel.ON_DEMAND))
    (nic,) = gce.instances["us-central1-a"]["thrifty-minilm-0"]["networkInterfaces"]
    assert "accessConfigs" not in nic
    assert status.endpoint_url == f"http://{nic['networkIP']}:8080" and nic["networkIP"].startswith("10.")


# -- spot rebalance on GCE ----------------------------------------------------------------------------
def _executor(gcp: GcpProvider) -> Any:
    from thrifty.providers.rebalance import Executor

    return Executor(provider=gcp, health_check=lambda replica: replica.state == "running")


def test_preempted_vm_is_replaced_with_a_30_s_drain_budget_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    from thrifty.policies.rebalance import decide
    from thrifty.providers.rebalance import view_of

    gcp.deploy(_spec(make_spec))
    del gce.instances["us-central1-a"]["thrifty-minilm-1"]  # preempted, termination action DELETE
    (action,) = decide(view_of(gcp, "minilm", region="us-central1"))
    assert (action.kind, action.slot, action.drain_budget_s) == ("replace", 1, 30)
    (outcome,) = _executor(gcp).run([action])
    assert outcome.status == "done"
    slots = sorted(i["labels"]["thrifty-slot"] for i in gce.instances["us-central1-a"].values())
    assert slots == ["0", "1"]


def test_spot_stockout_falls_back_then_returns_to_spot_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    from thrifty.policies.rebalance import decide
    from thrifty.providers.rebalance import view_of

    gce.spot_stocked_out.add("us-central1-a")
    gcp.deploy(_spec(make_spec))
    models = {i["scheduling"]["provisioningModel"] for i in gce.instances["us-central1-a"].values()}
    assert models == {"STANDARD"}
    assert all(
        i["labels"]["thrifty-fallback"] == "on-demand" for i in gce.instances["us-central1-a"].values()
    )

    view = view_of(gcp, "minilm", region="us-central1", on_demand_usd_per_hour=0.067, spot_usd_per_hour=0.02)
    assert [o.status for o in _executor(gcp).run(decide(view))] == ["skipped", "skipped"]

    gce.spot_stocked_out.clear()
    outcomes = _executor(gcp).run(decide(view_of(gcp, "minilm", region="us-central1")))
    assert [(o.action.kind, o.status) for o in outcomes] == [("return_to_spot", "done")] * 2
    left = list(gce.instances["us-central1-a"].values())
    assert len(left) == 2 and {i["scheduling"]["provisioningModel"] for i in left} == {"SPOT"}


# -- GPUs -----------------------------------------------------------------------------------------
#: the GCE accelerator type of each GPU that the snapshot prices per zone (GCE's own names)
_GCE_TYPES = {
    "T4": "nvidia-tesla-t4",
    "P4": "nvidia-tesla-p4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
}


@pytest.fixture
def gpu_zones(gce: FakeGce, shared_data: Path) -> dict[str, set[str]]:
    """Which zone sells which GPU, as the price snapshot says (accelerator-only rows)."""
    import pandas as pd

    raw = pd.read_csv(shared_data / "pricing" / "gcp.csv", dtype={"instance_type": str})
    sold = raw[raw["instance_type"].isna() & raw["accelerator_name"].isin(list(_GCE_TYPES))]
    for zone, name in zip(sold["zone"], sold["accelerator_name"], strict=True):
        gce.accelerator_types.setdefault(zone, set()).add(_GCE_TYPES[name])
    return gce.accelerator_types


def test_gpu_offer_attaches_the_accelerator_and_terminates_on_maintenance_replayed(
    gcp: GcpProvider, gce: FakeGce, gpu_zones: dict[str, set[str]], make_spec: Any
) -> None:
    spec = _spec(make_spec, region="us-central1-a", instance_type="n1-highmem-4+T4x1", on_demand_floor=1)
    assert gcp.deploy(spec).replicas_ready == 2
    for inst in gce.instances["us-central1-a"].values():
        assert inst["machineType"] == "zones/us-central1-a/machineTypes/n1-highmem-4"
        assert inst["guestAccelerators"] == [
            {"acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4", "acceleratorCount": 1}
        ]
        assert inst["scheduling"]["onHostMaintenance"] == "TERMINATE"
    floor = gce.instances["us-central1-a"]["thrifty-minilm-0"]["scheduling"]
    assert (floor["provisioningModel"], floor["automaticRestart"]) == ("STANDARD", True)
    # a spot replacement (rebalance) reads the spec back and attaches the GPU again
    replica = gcp.launch_replica("minilm", 1, PriceModel.SPOT, replaces="thrifty-minilm-1")
    assert gce.instances["us-central1-a"][replica.id]["guestAccelerators"][0]["acceleratorCount"] == 1


def test_bundled_gpu_machine_types_terminate_on_maintenance_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gcp.deploy(_spec(make_spec, region="us-central1-a", instance_type="g2-standard-4", replicas=1,
                     price_model=PriceModel.ON_DEMAND))  # fmt: skip
    inst = gce.instances["us-central1-a"]["thrifty-minilm-0"]
    assert inst["scheduling"]["onHostMaintenance"] == "TERMINATE" and "guestAccelerators" not in inst
    cpu = _spec(make_spec, name="cpu", region="us-central1-a", replicas=1, price_model=PriceModel.ON_DEMAND)
    gcp.deploy(cpu)
    assert gce.instances["us-central1-a"]["thrifty-cpu-0"]["scheduling"]["onHostMaintenance"] == "MIGRATE"


def test_the_double_refuses_what_gce_refuses_replayed(gce: FakeGce, gpu_zones: dict[str, set[str]]) -> None:
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1

    client = compute_v1.InstancesClient(
        credentials=AnonymousCredentials(), transport="rest", client_options={"api_endpoint": gce.url}
    )
    body = compute_v1.Instance(
        name="raw",
        machine_type="zones/us-central1-a/machineTypes/n1-standard-4",
        guest_accelerators=[
            compute_v1.AcceleratorConfig(
                accelerator_type="zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4", accelerator_count=1
            )
        ],
        network_interfaces=[compute_v1.NetworkInterface(network="global/networks/default")],
    )

    def insert(instance: Any) -> None:
        request = compute_v1.InsertInstanceRequest(
            project=PROJECT, zone="us-central1-a", instance_resource=instance, request_id="r1"
        )
        client.insert_unary(request=request)

    with pytest.raises(gexc.BadRequest, match="do not support live migration"):  # no scheduling: MIGRATE
        insert(body)
    # what thrifty used to send: the catalog's name as the machine type, no GPU attached
    old = compute_v1.Instance(name="old", machine_type="zones/us-central1-a/machineTypes/n1-standard-4+T4x1")
    with pytest.raises(gexc.BadRequest, match="Machine type with name 'n1-standard-4\\+T4x1' does not exist"):
        insert(old)
    assert gce.instances == {}


def test_a_zone_without_the_gpu_is_a_capacity_error_and_the_next_zone_works_replayed(
    gcp: GcpProvider, gce: FakeGce, gpu_zones: dict[str, set[str]], make_spec: Any
) -> None:
    lacking = sorted(z for z, types in gpu_zones.items() if "nvidia-tesla-t4" not in types)[0]
    selling = sorted(z for z, types in gpu_zones.items() if "nvidia-tesla-t4" in types)[0]
    candidates = [
        _spec(make_spec, region=zone, instance_type="n1-standard-4+T4x1", replicas=1)
        for zone in (lacking, selling)
    ]
    chosen, status, skipped = deploy_first_available(candidates, lambda spec: gcp)
    assert (chosen.region, status.replicas_ready) == (selling, 1)
    assert (
        len(skipped) == 1 and f"zones/{lacking}/acceleratorTypes/nvidia-tesla-t4' was not found" in skipped[0]
    )
    assert gce.instances.get(lacking, {}) == {}


def test_a_gpu_gcp_does_not_attach_is_refused_before_any_call_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    with pytest.raises(ConfigError, match="L4 does not attach to n1-standard-4") as info:
        gcp.deploy(_spec(make_spec, region="us-central1-a", instance_type="n1-standard-4+L4x1"))
    assert info.value.hint and "g2" in info.value.hint
    assert not any(r.method == "POST" for r in gce.server.requests)


# -- network rule and zones --------------------------------------------------------------------
def test_each_deployment_gets_a_firewall_rule_on_its_tag_deleted_with_it_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gcp.deploy(_spec(make_spec))
    rule = gce.firewalls["thrifty-minilm"]
    assert rule["sourceRanges"] == list(ALLOWED_CIDRS) and rule["targetTags"] == ["thrifty-minilm"]
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["8080"]}] and rule["direction"] == "INGRESS"
    for inst in gce.instances["us-central1-a"].values():
        assert inst["tags"]["items"] == ["thrifty-minilm"], "the rule reaches only this deployment's VMs"
    gcp.deploy(_spec(make_spec))
    assert len(_inserts(gce, "/global/firewalls")) == 1, "a second deploy inserts no second rule"
    gcp.delete("minilm")
    assert gce.firewalls == {} and gce.instances["us-central1-a"] == {}


def _inserts(gce: FakeGce, path: str) -> list[Any]:
    return [r for r in gce.server.requests if r.method == "POST" and r.path.endswith(path)]


def test_a_changed_source_range_patches_the_rule_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gcp.deploy(_spec(make_spec))
    gcp.deploy(_spec(make_spec, serving={"allowed_cidrs": ["203.0.113.0/24"]}))
    assert gce.firewalls["thrifty-minilm"]["sourceRanges"] == ["203.0.113.0/24"]


def test_no_source_range_is_refused_before_any_call_replayed(gce: FakeGce, make_spec: Any) -> None:
    from dataclasses import replace

    from google.auth.credentials import AnonymousCredentials

    from thrifty.settings import get_settings

    get_settings.cache_clear()
    boot = replace(TEST_BOOT, allowed_cidrs=())
    target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=boot)
    closed = GcpProvider(target, credentials=AnonymousCredentials())
    with pytest.raises(ConfigError, match="no source range") as info:
        closed.deploy(_spec(make_spec))
    assert info.value.hint and "allowed_cidrs" in info.value.hint
    assert not [r for r in gce.server.requests if r.method != "GET"], "nothing was created"


def test_a_failed_deploy_deletes_the_rule_it_created_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    gce.stocked_out.add("us-central1-a")
    with pytest.raises(CapacityError):
        gcp.deploy(_spec(make_spec))
    assert gce.firewalls == {} and gcp.list_managed() == []


def test_gc_dry_run_finds_a_leftover_rule_replayed(gcp: GcpProvider, gce: FakeGce, make_spec: Any) -> None:
    from thrifty.providers.gc import sweep

    gcp.deploy(_spec(make_spec, replicas=1))
    for zone, inst in gcp._list("minilm"):
        gcp._delete_instance(zone, inst.name)  # a delete cut short before the rule went
    listed = sweep([gcp], [], grace_s=0, dry_run=True)
    assert [(o.resource.kind, o.resource.id) for o in listed] == [("firewall", "thrifty-minilm")]
    assert "thrifty-minilm" in gce.firewalls
    sweep([gcp], [], grace_s=0)
    assert gce.firewalls == {} and sweep([gcp], [], grace_s=0, dry_run=True) == []


def test_the_double_refuses_bad_firewall_rules_as_gce_does_replayed(gce: FakeGce) -> None:
    import requests

    url = f"{gce.url}{BASE}/global/firewalls"
    good = {"name": "r1", "allowed": [{"IPProtocol": "tcp", "ports": ["80"]}],
            "sourceRanges": ["198.51.100.0/24"], "targetTags": ["t"]}  # fmt: skip
    refused = {
        "Must be a match of regex": {**good, "name": "Bad_Name"},
        "less than or equal to 65535": {**good, "priority": 70000},
        "exactly one of 'allowed' or 'denied'": {**good, "denied": good["allowed"]},
        "Must be a CIDR address range": {**good, "sourceRanges": ["10.0.0.300/8"]},
    }
    for why, body in refused.items():
        answer = requests.post(url, json=body, timeout=5)
        assert answer.status_code == 400 and why in answer.json()["error"]["message"], why
    assert requests.post(url, json=good, timeout=5).status_code == 200
    for op in list(gce.operations):
        requests.get(f"{gce.url}{BASE}/global/operations/{op}", timeout=5)
        requests.get(f"{gce.url}{BASE}/global/operations/{op}", timeout=5)
    assert requests.post(url, json=good, timeout=5).status_code == 409
    # accepted as GCE accepts it, and as dangerous: no source is 0.0.0.0/0
    assert requests.post(url, json={**good, "name": "open", "sourceRanges": []}, timeout=5).status_code == 200
    for op in list(gce.operations):
        requests.get(f"{gce.url}{BASE}/global/operations/{op}", timeout=5)
        requests.get(f"{gce.url}{BASE}/global/operations/{op}", timeout=5)
    assert gce.firewalls["open"]["sourceRanges"] == ["0.0.0.0/0"]


def test_a_plan_zone_is_used_and_a_region_gets_a_zone_inside_it_replayed(
    gcp: GcpProvider, gce: FakeGce, make_spec: Any
) -> None:
    zoned = _spec(make_spec, name="zoned", region="europe-west1-c", replicas=1)
    gcp.deploy(zoned)
    assert list(gce.instances["europe-west1-c"]) == ["thrifty-zoned-0"]
    # europe-west1 has no zone "-a": the zone is one GCE lists in that region
    regional = _spec(make_spec, name="regional", region="europe-west1", replicas=1)
    assert gcp.zone_of(regional) == "europe-west1-b"
    gcp.deploy(regional)
    assert list(gce.instances["europe-west1-b"]) == ["thrifty-regional-0"]
    assert gcp.zone_of(_spec(make_spec, region="us-central1")) == "us-central1-a"


# -- Secret Manager (the deployment's TLS key and token digest) ---------------------------------------
GCP_TOKEN = "ya29.gcp-test-access-token"
VM_TOKEN = "ya29.the-vms-service-account-token"


class FakeSecretManager:
    """Secret Manager v1 over REST as the control plane and a VM use it: every call needs a bearer
    token (thrifty's for writes, the VM's metadata token for reads), an unknown secret is a 404, a
    second create a 409. The metadata server's token endpoint is served too (for the VM side)."""

    def __init__(self, server: ReplayServer) -> None:
        self.url = server.url
        self.secrets: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[str]] = {}
        base = f"/v1/projects/{PROJECT}/secrets"
        server.route("POST", base, self.post)
        server.route("GET", base, self.get)
        server.route("DELETE", base, self.delete)
        server.route("GET", "/computeMetadata/v1/instance/service-accounts/default/token", self.token)

    def token(self, req: Request) -> tuple[int, Any]:
        if req.headers.get("Metadata-Flavor") != "Google":
            return 403, "Missing Metadata-Flavor:Google header"
        return 200, {"access_token": VM_TOKEN, "expires_in": 3599, "token_type": "Bearer"}

    def _denied(self, req: Request, allowed: tuple[str, ...]) -> tuple[int, Any] | None:
        if req.headers.get("Authorization") not in {f"Bearer {t}" for t in allowed}:
            return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials."}}
        return None

    def _name(self, req: Request) -> str:
        return req.path.removeprefix(f"/v1/projects/{PROJECT}/secrets").strip("/").split("/")[0].split(":")[0]

    def post(self, req: Request) -> tuple[int, Any]:
        if denied := self._denied(req, (GCP_TOKEN,)):
            return denied
        name = self._name(req)
        if not name:  # create
            name = req.query["secretId"][0]
            if name in self.secrets:
                return 409, {"error": {"code": 409, "message": f"Secret [{name}] already exists."}}
            assert req.body["replication"] == {"automatic": {}}
            self.secrets[name] = {"name": f"projects/{PROJECT}/secrets/{name}", "labels": req.body["labels"],
                                  "createTime": datetime.now(UTC).isoformat().replace("+00:00", "Z")}  # fmt: skip
            self.versions[name] = []
            return 200, self.secrets[name]
        if name not in self.secrets or not req.path.endswith(":addVersion"):
            return 404, {"error": {"code": 404, "message": f"Secret [{name}] not found."}}
        self.versions[name].append(req.body["payload"]["data"])
        return 200, {"name": f"projects/{PROJECT}/secrets/{name}/versions/{len(self.versions[name])}"}

    def get(self, req: Request) -> tuple[int, Any]:
        access = req.path.endswith("/versions/latest:access")
        if denied := self._denied(req, (VM_TOKEN,) if access else (GCP_TOKEN,)):
            return denied
        name = self._name(req)
        if not name:  # the list, filtered like the API by ``labels.KEY=VALUE``
            key, _, value = req.query.get("filter", ["labels.="])[0].removeprefix("labels.").partition("=")
            found = [s for s in self.secrets.values() if not key or s["labels"].get(key) == value]
            return 200, {"secrets": found, "totalSize": len(found)} if found else {}
        if name not in self.secrets or (access and not self.versions[name]):
            return 404, {"error": {"code": 404, "message": f"Secret [{name}] not found or has no versions."}}
        if access:
            return 200, {"payload": {"data": self.versions[name][-1]}}
        return 200, self.secrets[name]

    def delete(self, req: Request) -> tuple[int, Any]:
        if denied := self._denied(req, (GCP_TOKEN,)):
            return denied
        name = self._name(req)
        if self.secrets.pop(name, None) is None:
            return 404, {"error": {"code": 404, "message": f"Secret [{name}] not found."}}
        self.versions.pop(name)
        return 200, {}


def _tls_spec(make_spec: Any, token_sha256: str = "cd" * 32) -> Any:
    from pydantic import SecretStr

    from thrifty import tls

    cert = tls.make_cert("minilm")
    serving = {"token_sha256": token_sha256, "tls_cert_sha256": cert.sha256, "tls_cert_pem": cert.cert_pem}
    return _spec(
        make_spec, serving=serving, secret_bundle=SecretStr(tls.secret_bundle(cert, token_sha256))
    ), cert


def test_the_tls_key_goes_to_secret_manager_and_the_vm_reads_it_with_its_own_token_replayed(
    replay_server: ReplayServer, gce: FakeGce, make_spec: Any
) -> None:
    from dataclasses import replace

    from google.oauth2.credentials import Credentials

    from thrifty.secret_fetch import read_bundle

    store = FakeSecretManager(replay_server)
    boot = replace(TEST_BOOT, secrets_endpoint_url=store.url)
    target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=boot)
    gcp = GcpProvider(target, credentials=Credentials(token=GCP_TOKEN))
    spec, cert = _tls_spec(make_spec)
    endpoint = gcp.deploy(spec).endpoint_url
    assert endpoint is not None and endpoint.startswith("https://"), "the VM serves TLS"
    assert store.secrets["thrifty-minilm"]["labels"] == {
        "thrifty-managed": "true",
        "thrifty-deployment": "minilm",
    }
    inst = next(i for zone in gce.instances.values() for i in zone.values())
    user_data = next(i["value"] for i in inst["metadata"]["items"] if i["key"] == "user-data")
    ref = f"gcp-secretmanager:projects/{PROJECT}/secrets/thrifty-minilm"
    assert f"THRIFTY_SECRET={ref}" in user_data and cert.key_pem.splitlines()[1] not in user_data
    env = {"THRIFTY_METADATA_URL": store.url, "THRIFTY_SECRETS_ENDPOINT_URL": store.url}
    bundle = read_bundle(ref, env)  # what the VM's container does, with the metadata server's token
    assert (bundle.key_pem, bundle.token_sha256) == (cert.key_pem, "cd" * 32)
    gcp.deploy(spec)  # a redeploy adds a version, not a second secret
    assert list(store.secrets) == ["thrifty-minilm"] and len(store.versions["thrifty-minilm"]) == 2
    gcp.delete("minilm")
    assert store.secrets == {}
    with pytest.raises(ConfigError, match="answered 404"):
        read_bundle(ref, env)


def test_secret_manager_refuses_a_caller_with_a_wrong_token_and_nothing_is_left_replayed(
    replay_server: ReplayServer, gce: FakeGce, make_spec: Any
) -> None:
    from dataclasses import replace

    from google.oauth2.credentials import Credentials

    from thrifty.errors import CredentialsError

    store = FakeSecretManager(replay_server)
    boot = replace(TEST_BOOT, secrets_endpoint_url=store.url)
    target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=boot)
    gcp = GcpProvider(target, credentials=Credentials(token="ya29.someone-elses-token"))
    with pytest.raises(CredentialsError, match="secretmanager") as raised:
        gcp.deploy(_tls_spec(make_spec)[0])
    assert "PRIVATE KEY" not in str(raised.value)
    assert store.secrets == {} and gce.instances == {}


def test_gc_finds_and_deletes_a_secret_whose_deployment_is_gone_replayed(
    replay_server: ReplayServer, gce: FakeGce, make_spec: Any
) -> None:
    from dataclasses import replace

    from google.oauth2.credentials import Credentials

    from thrifty.providers.gc import sweep

    store = FakeSecretManager(replay_server)
    boot = replace(TEST_BOOT, secrets_endpoint_url=store.url)
    target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=boot)
    gcp = GcpProvider(target, credentials=Credentials(token=GCP_TOKEN))
    gcp.deploy(_tls_spec(make_spec)[0].with_changes(replicas=1))
    store.secrets["someone-elses"] = {"name": f"projects/{PROJECT}/secrets/someone-elses", "labels": {}}
    store.versions["someone-elses"] = []
    found = [(r.kind, r.id, r.deployment_name) for r in gcp.list_managed() if r.kind == "secret"]
    assert found == [("secret", "thrifty-minilm", "minilm")]
    assert sweep([gcp], [("gcp", "minilm")], grace_s=0, dry_run=True) == [], "a live deployment's"
    for zone, inst in gcp._list("minilm"):
        gcp._delete_instance(zone, inst.name)
    gcp._delete_firewall("thrifty-minilm")  # a delete cut short before the secret went
    listed = sweep([gcp], [], grace_s=0, dry_run=True)
    assert [(o.resource.kind, o.resource.id) for o in listed] == [("secret", "thrifty-minilm")]
    assert sweep([gcp], [], grace_s=3600, dry_run=True) == [], "younger than the grace period"
    sweep([gcp], [], grace_s=0)
    assert list(store.secrets) == ["someone-elses"] and sweep([gcp], [], grace_s=0, dry_run=True) == []


# -- the VMs' service account on a gs:// store's bucket (bucket IAM) ----------------------------------
VM_ACCOUNT = f"thrifty-vms@{PROJECT}.iam.gserviceaccount.com"
VIEWER = "roles/storage.objectViewer"


def _gcs_target(replay_server: ReplayServer, gce: FakeGce, **target: Any) -> tuple[GcpProvider, Any]:
    """A provider whose VMs read ``gs://models/thrifty`` as VM_ACCOUNT, and the GCS double where the
    VMs' token (VM_TOKEN) reads only through the bucket's IAM policy; thrifty's token may set it."""
    from dataclasses import replace

    from google.oauth2.credentials import Credentials

    from tests.unit.providers.storage_doubles import FakeGcs, StoredObject

    when = datetime.now(UTC)
    gcs = FakeGcs(replay_server, owners={GCP_TOKEN}, identities={VM_TOKEN: f"serviceAccount:{VM_ACCOUNT}"},
                  buckets={"models": {"thrifty/o": StoredObject(b"weights", "STANDARD", when, when, 1)}})  # fmt: skip
    boot = replace(TEST_BOOT, artifact_store_url="gs://models/thrifty", store_endpoint_url=gcs.url)
    fields = {"service_account_email": VM_ACCOUNT, **target}
    target_ = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=boot, **fields)
    return GcpProvider(target_, credentials=Credentials(token=GCP_TOKEN)), gcs


def _vm_reads(gcs: Any) -> int:
    import httpx

    url = f"{gcs.url}/storage/v1/b/models/o/thrifty%2Fo?alt=media"
    return httpx.get(url, headers={"Authorization": f"Bearer {VM_TOKEN}"}).status_code


def _iam_puts(gcs: Any) -> int:
    return sum(1 for r in gcs.server.requests if r.method == "PUT" and r.path.endswith("/models/iam"))


def test_a_gs_store_gives_the_vms_service_account_object_viewer_on_the_bucket_replayed(
    replay_server: ReplayServer, gce: FakeGce, make_spec: Any
) -> None:
    gcp, gcs = _gcs_target(replay_server, gce)
    assert _vm_reads(gcs) == 403, "the service account holds nothing on the bucket yet"
    gcp.deploy(_spec(make_spec, replicas=2))
    bindings = gcs.policies["models"]["bindings"]
    assert bindings == [{"role": VIEWER, "members": [f"serviceAccount:{VM_ACCOUNT}"]}]
    inst = next(i for zone in gce.instances.values() for i in zone.values())
    assert inst["serviceAccounts"][0]["email"] == VM_ACCOUNT
    assert _vm_reads(gcs) == 200 and _iam_puts(gcs) == 1
    gcp.deploy(_spec(make_spec, replicas=2))
    assert _iam_puts(gcs) == 1, "the binding exists: a rerun reads the policy and writes nothing"
    gcp.delete("minilm")
    assert gcs.policies["models"]["bindings"] == bindings, "the shared service account keeps its role"


def test_a_policy_changed_meanwhile_is_read_again_and_its_change_kept_replayed(
    replay_server: ReplayServer, gce: FakeGce, make_spec: Any
) -> None:
    from thrifty.errors import StoreError
    from thrifty.providers.gcs_iam import ATTEMPTS

    gcp, gcs = _gcs_target(replay_server, gce)
    gcs.concurrent_changes = 2  # two writes meet a policy someone else changed: 412, read, retry
    gcp.deploy(_spec(make_spec, replicas=1))
    roles = sorted(b["role"] for b in gcs.policies["models"]["bindings"])
    assert roles == ["roles/storage.legacyBucketReader"] * 2 + [VIEWER] and _iam_puts(gcs) == 3
    assert _vm_reads(gcs) == 200
    other, busy = _gcs_target(replay_server, gce)
    busy.buckets["models"] = {}
    busy.concurrent_changes = 10**6
    with pytest.raises(StoreError, match="412") as raised:
        other.deploy(_spec(make_spec, name="busy", replicas=1))
    assert f"{ATTEMPTS} times" in str(raised.value) and "deploy again" in raised.value.hint


def test_without_the_right_to_set_the_bucket_policy_the_deploy_names_it_and_starts_nothing_replayed(
    replay_server: ReplayServer, gce: FakeGce, make_spec: Any
) -> None:
    from thrifty.errors import CredentialsError

    gcp, gcs = _gcs_target(replay_server, gce)
    gcs.owners, gcs.writers = set(), {GCP_TOKEN}  # may write objects, not the bucket's policy
    with pytest.raises(CredentialsError, match="403") as raised:
        gcp.deploy(_spec(make_spec))
    assert "storage.buckets.setIamPolicy" in raised.value.hint
    assert gce.firewalls == {} and not any(gce.instances.values())


def test_a_gs_store_without_a_service_account_is_refused_before_any_call_replayed(
    replay_server: ReplayServer, gce: FakeGce, make_spec: Any
) -> None:
    gcp, _ = _gcs_target(replay_server, gce, service_account_email=None)
    with pytest.raises(ConfigError, match="no service_account_email") as raised:
        gcp.deploy(_spec(make_spec))
    assert "service_account_email" in raised.value.hint
    assert {r.method for r in replay_server.requests} <= {"GET"}, "nothing was changed (the zones were read)"


def test_the_double_refuses_what_gcs_iam_refuses_replayed(replay_server: ReplayServer, gce: FakeGce) -> None:
    import httpx

    _, gcs = _gcs_target(replay_server, gce)
    url, owner = f"{gcs.url}/storage/v1/b/models/iam", {"Authorization": f"Bearer {GCP_TOKEN}"}
    policy = httpx.get(url, headers=owner).json()
    assert policy["etag"] and policy["resourceId"] == "projects/_/buckets/models"
    good = [{"role": VIEWER, "members": [f"serviceAccount:{VM_ACCOUNT}"]}]
    refusals = [
        (owner, {"etag": "CAA=", "bindings": good}, 412, "conditionNotMet"),
        (owner, {"etag": policy["etag"], "bindings": [{"role": VIEWER, "members": ["thrifty-vms"]}]}, 400, "invalid"),
        (owner, {"etag": policy["etag"], "bindings": [{"role": VIEWER, "members": ["serviceAccount:x"]}]}, 400, "invalid"),
        (owner, {"etag": policy["etag"], "bindings": [{"role": "roles/storage.reader", "members": []}]}, 400, "invalid"),
        ({"Authorization": f"Bearer {VM_TOKEN}"}, {"etag": policy["etag"], "bindings": good}, 403, "forbidden"),
        ({}, {"etag": policy["etag"], "bindings": good}, 401, "required"),
    ]  # fmt: skip
    for headers, body, status, reason in refusals:
        answer = httpx.put(url, headers=headers, json=body)
        assert (answer.status_code, answer.json()["error"]["errors"][0]["reason"]) == (status, reason), body
    assert gcs.policies["models"]["bindings"] == []
    assert httpx.get(url, headers={"Authorization": f"Bearer {VM_TOKEN}"}).status_code == 403
    assert httpx.get(url.replace("/models/", "/nobody/"), headers=owner).status_code == 404
    answer = httpx.put(url, headers=owner, json={"etag": policy["etag"], "bindings": good})
    assert answer.status_code == 200 and answer.json()["etag"] != policy["etag"]
