"""Azure target: one VM per replica (azure-mgmt-compute), spot through ``priority=Spot``.

- VM ``thrifty-<name>-<slot>`` in the resource group of the target and the region of the spec.
  Spot VMs get ``eviction_policy`` (Delete by default, or Deallocate) and ``max_price=-1`` (pay up
  to the on-demand price, never evicted for price); slots below the on-demand floor are Regular.
  A spot refusal for capacity falls back to Regular, tagged ``thrifty:fallback``, so the rebalance
  moves it back; replacements get a random name suffix while the old VM drains.
- The NIC is created with the VM (``network_interface_configurations``, deleted with it), so no
  network SDK is needed; the cloud-init user data of ``boot`` is the VM's ``custom_data``.
- Ownership: tags ``thrifty:managed=true`` and ``thrifty:deployment=<name>``; the spec rides in the
  ``thrifty:spec`` tag so ``scale`` needs nothing but the cloud.
- Every change is a long-running operation awaited through its poller (``begin_*`` → ``result()``):
  ARM answers 201/202 with ``Azure-AsyncOperation``/``Location`` and azure-core polls it.
- Errors: QuotaExceeded/OperationNotAllowed → ``QuotaExceededError``; SkuNotAvailable,
  AllocationFailed, ZonalAllocationFailed, OverconstrainedAllocationRequest → ``CapacityError``;
  AuthorizationFailed names the Azure RBAC action to grant.

Networking per region and per deployment (ARM ``Microsoft.Network`` calls sent through the compute
client's own pipeline, ``send_request``, so no network SDK is needed):

- the VMs' subnet is the target's ``subnet_id`` when its virtual network is in the spec's region;
  in any other region thrifty uses (creating once) the virtual network ``thrifty-<region>`` with
  subnet ``serving`` in the target's resource group — shared infrastructure, tagged
  ``thrifty:shared`` and never swept (a virtual network costs nothing);
- each deployment gets a network security group ``thrifty-<name>`` in its region with one inbound
  rule (priority 1000, tcp on the serving port, from the source range of ``providers.network``),
  attached to every NIC of the deployment, and a Standard public IP per VM (deleted with it). The
  NSG is created before the VMs and deleted after them on delete, rollback and gc.

With a Key Vault, each VM gets a system-assigned identity and that identity the role "Key Vault
Secrets User" at the vault's scope (``azure_roles``: one ARM role assignment per VM, made right after
the VM and deleted before it; gc finds a forgotten one by the mark in its description). With an
``az://ACCOUNT/CONTAINER/…`` artifact store, each VM gets an identity too, and that identity the role
"Storage Blob Data Reader" at the container's scope (the same mechanics), so it fetches the variant
as itself.

Plain-http endpoints are accepted only on loopback (tests): azure-core's bearer policy refuses to
send a token over http unless the call passes ``enforce_https=False``, which this module does for
``http://127.0.0.1`` / ``http://localhost`` base URLs and nothing else.
"""

from __future__ import annotations

import base64
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, ClassVar

from thrifty.errors import (
    CapacityError,
    ConfigError,
    CredentialsError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    ThriftyError,
)
from thrifty.providers import azure_roles as roles
from thrifty.providers.base import (
    DeploymentStatus,
    DeploySpec,
    Feature,
    ManagedResource,
    PriceModel,
    Replica,
    require,
    slot_market,
    slot_name,
)
from thrifty.providers.boot import BootConfig, render_user_data, secret_name
from thrifty.providers.gc import DEPLOYMENT_KEY, MANAGED_KEY
from thrifty.providers.network import CREATED_KEY, now_tag, parse_created, rule_name, source_ranges

_log = logging.getLogger(__name__)
PLAIN_HTTP = (
    "Azure deployment %s serves plain HTTP: the Azure target has no key_vault_url "
    "(set one to deliver a TLS key through Key Vault)"
)
SPEC_TAG = "thrifty:spec"
SLOT_TAG = "thrifty:slot"
FALLBACK_TAG = "thrifty:fallback"
_STATES = {
    "running": "running",
    "starting": "pending",
    "creating": "pending",
    "stopping": "stopping",
    "deallocating": "stopping",
    "stopped": "stopped",
    "deallocated": "stopped",
}
REPLICAS_TAG = "thrifty:replicas"
SHARED_TAG = "thrifty:shared"
NETWORK_API = "2024-05-01"
#: the address space of the per-region virtual network thrifty creates (regions are not peered)
VNET_PREFIX, SUBNET_PREFIX = "10.42.0.0/16", "10.42.0.0/24"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LOOPBACK_HTTP = re.compile(r"http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)")
_CAPACITY_CODES = {
    "SkuNotAvailable",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
    "SpotMaxPriceTooLow",
}
_QUOTA_CODES = {"QuotaExceeded", "OperationNotAllowed", "SkuQuotaExceeded"}


@dataclass(frozen=True)
class AzureTarget:
    """Where and how to launch on Azure (plain config; the block builds it)."""

    subscription_id: str
    resource_group: str
    subnet_id: str
    ssh_public_key: str
    admin_username: str = "thrifty"
    image: tuple[str, str, str, str] = ("Canonical", "ubuntu-24_04-lts", "server", "latest")
    eviction_policy: str = "Delete"
    spot_fallback_on_demand: bool = True
    public_ip: bool = True
    base_url: str | None = None
    polling_interval_s: float = 5.0
    #: the Key Vault (https://V.vault.azure.net) holding each deployment's TLS key and token
    #: digest; without one the VMs serve plain HTTP with the token digest in their environment
    key_vault_url: str | None = None
    #: the vault's ARM resource id (scope of the VMs' "Key Vault Secrets User" role assignments);
    #: None: derived from ``key_vault_url`` (https://NAME.vault.azure.net) in ``resource_group``
    key_vault_id: str | None = None
    #: how long a role assignment is retried while ARM cannot see a new VM identity yet
    role_grant_deadline_s: float = 180.0
    #: the artifact storage account's ARM resource id (an ``az://`` store: the VMs' "Storage Blob
    #: Data Reader" scope is its container); None: the account named in the URL, in ``resource_group``
    storage_account_id: str | None = None
    boot: BootConfig = BootConfig(artifact_store_url="s3://thrifty-artifacts")  # noqa: RUF009 (frozen)

    def __post_init__(self) -> None:
        if self.eviction_policy not in ("Delete", "Deallocate"):
            raise ConfigError(f"eviction_policy={self.eviction_policy!r}", hint="use Delete or Deallocate")


def _translate(exc: Exception, what: str) -> ThriftyError:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

    if isinstance(exc, ClientAuthenticationError):
        return CredentialsError(
            f"Azure {what}: authentication failed",
            hint="check the AzureComputeCredentials block (tenant, client)",
        )
    if isinstance(exc, ResourceNotFoundError):
        return NotFoundError(f"Azure {what}: not found", hint="it may have been deleted outside thrifty")
    if not isinstance(exc, HttpResponseError):
        return ProviderError(
            f"Azure {what} failed: {type(exc).__name__}", hint="check the endpoint and network"
        )
    code = str(getattr(exc.error, "code", "") or "")
    message = str(getattr(exc.error, "message", "") or exc.reason or "")
    text = f"Azure {what} refused: {code}: {message}"
    if code in _CAPACITY_CODES:
        return CapacityError(text, hint="try another VM size, region or the plan's next candidate")
    if code in _QUOTA_CODES:
        return QuotaExceededError(text, hint="request a vCPU quota increase (Subscriptions → Usage + quotas)")
    if code == "InvalidParameter" and getattr(exc.error, "target", None) == "vmSize":
        return ConfigError(text, hint="use a VM size Azure sells (plan again from current prices)")
    if code == "PrincipalNotFound":
        return ProviderError(
            text, hint="ARM does not see the new VM identity yet: raise role_grant_deadline_s or deploy again"
        )
    if code in ("AuthorizationFailed", "LinkedAuthorizationFailed") and "role assignment" in what:
        where = "artifact container" if "container" in what else "Key Vault"
        return CredentialsError(
            text,
            hint="grant thrifty's identity Microsoft.Authorization/roleAssignments/write and /delete on the "
            f"{where} (e.g. the role Role Based Access Control Administrator there)",
        )
    if code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return CredentialsError(
            text,
            hint="grant the RBAC action Microsoft.Compute/virtualMachines/write (e.g. role Virtual Machine Contributor)",
        )
    return ProviderError(text, hint="see the Azure error code in the message")


class _NoCredential:
    """Stands in for a credential on ``--dry-run``, where no request is sent."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from thrifty.errors import CredentialsError

        raise CredentialsError("--dry-run sends no request", hint="drop --dry-run to deploy")


class AzureProvider:
    name: ClassVar[str] = "azure"
    unsupported: ClassVar[Mapping[Feature, str]] = {
        Feature.SCALE_TO_ZERO: "Azure VMs do not scale to zero on requests; use hibernate",
    }

    def __init__(self, target: AzureTarget, *, credential: Any) -> None:
        from azure.mgmt.compute import ComputeManagementClient

        self.target = target
        self.credential = credential
        kwargs: dict[str, Any] = {"base_url": target.base_url} if target.base_url else {}
        self.client = ComputeManagementClient(credential, target.subscription_id, **kwargs)
        self._options: dict[str, Any] = {}
        self._subnets: dict[str, str] = {}
        self._dry_run = False
        if target.base_url and _LOOPBACK_HTTP.match(target.base_url):
            self._options["enforce_https"] = False

    @property
    def secret_store(self) -> str:
        """Key Vault when the target names one: deployments then get a TLS key (``_with_token``)."""
        return "Key Vault" if self.target.key_vault_url else ""

    # -- vendor boundary ------------------------------------------------------------------

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, boot: BootConfig, dry_run: bool) -> AzureProvider:
        """The provider the CLI builds (credentials: DefaultAzureCredential; none on dry run)."""
        needed = ("subscription_id", "resource_group", "subnet_id", "ssh_public_key")
        missing = [k for k in needed if not options.get(k)]
        if missing and not dry_run:
            flags = ", ".join("--" + k.replace("_", "-") for k in missing)
            raise ConfigError(
                f"Azure target needs {flags}", hint="pass them or set THRIFTY_AZURE_* variables"
            )
        target = AzureTarget(
            subscription_id=options.get("subscription_id") or "00000000-0000-0000-0000-000000000000",
            resource_group=options.get("resource_group") or "RESOURCE_GROUP",
            subnet_id=options.get("subnet_id") or "SUBNET_ID",
            ssh_public_key=options.get("ssh_public_key") or "SSH_PUBLIC_KEY",
            key_vault_url=options.get("key_vault_url") or None,
            key_vault_id=options.get("key_vault_id") or None,
            boot=boot,
        )
        if dry_run:
            provider = cls(target, credential=_NoCredential())
            provider._dry_run = True
            return provider
        from azure.identity import DefaultAzureCredential

        return cls(target, credential=DefaultAzureCredential())

    def dry_run_document(self, spec: DeploySpec) -> Any:
        """What ``thrifty deploy --dry-run`` prints: one VM body per replica."""
        return [self.vm_body(spec, s).as_dict() for s in range(spec.replicas)]

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from azure.core.exceptions import AzureError

        try:
            return fn(*args, **kwargs, **self._options)
        except AzureError as exc:
            raise _translate(exc, what) from exc

    def _await(self, what: str, begin: Callable[..., Any], *args: Any) -> Any:
        """Start a long-running operation and wait for its end (``poller.result()``)."""
        from azure.core.exceptions import AzureError

        poller = self._call(what, begin, *args, polling_interval=self.target.polling_interval_s)
        try:
            return poller.result()
        except AzureError as exc:
            raise _translate(exc, what) from exc

    # -- networking (ARM Microsoft.Network through the compute client's pipeline) -------------
    def _network_path(self, kind: str, name: str = "") -> str:
        group = f"/subscriptions/{self.target.subscription_id}/resourceGroups/{self.target.resource_group}"
        return f"{group}/providers/Microsoft.Network/{kind}" + (f"/{name}" if name else "")

    def _arm(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, api: str = NETWORK_API
    ) -> Any:
        """One ARM call (JSON in, JSON out); None for a GET or DELETE of something absent."""
        what = f"{method} {path.split('/providers/', 1)[-1]}"
        if roles.ASSIGNMENTS in path:
            what = f"{method} role assignment {path.rsplit('/', 1)[-1]}"
        response = self._send_arm(what, method, path, body, api)
        if response.status_code == 404 and method in ("GET", "DELETE"):
            return None
        if response.status_code >= 400:
            raise self._arm_error(response, what)
        return response.json() if response.text() else None

    def _send_arm(self, what: str, method: str, path: str, body: Mapping[str, Any] | None, api: str) -> Any:
        from azure.core.rest import HttpRequest

        request = HttpRequest(method, f"{path}?api-version={api}", json=body)
        return self._call(what, self.client.send_request, request)

    @staticmethod
    def _arm_error(response: Any, what: str) -> ThriftyError:
        from azure.core.exceptions import HttpResponseError
        from azure.mgmt.core.exceptions import ARMErrorFormat

        return _translate(HttpResponseError(response=response, error_format=ARMErrorFormat), what)

    def _put_and_wait(self, path: str, body: Mapping[str, Any]) -> Any:
        """PUT a network resource, then poll it until its provisioningState is final."""
        found = self._arm("PUT", path, body)
        deadline = time.monotonic() + 600
        while (found or {}).get("properties", {}).get("provisioningState") not in ("Succeeded", "Failed"):
            if time.monotonic() > deadline:
                raise ProviderError(f"Azure PUT {path}: still provisioning", hint="look in the portal")
            time.sleep(self.target.polling_interval_s)
            found = self._arm("GET", path)
        if found["properties"]["provisioningState"] == "Failed":
            raise ProviderError(f"Azure PUT {path} failed", hint="see the resource's activity log")
        return found

    def _network_ids(self, spec: DeploySpec) -> tuple[str, str]:
        """(subnet id, NSG id) of the deployment's NICs (the target's subnet on ``--dry-run``)."""
        nsg = self._network_path("networkSecurityGroups", rule_name(spec.name))
        return (self.target.subnet_id if self._dry_run else self.subnet_for(spec.region)), nsg

    def subnet_for(self, region: str) -> str:
        """The target's subnet when its virtual network is in ``region``, else thrifty's own there."""
        if region not in self._subnets:
            vnet = self._arm("GET", self.target.subnet_id.split("/subnets/")[0])
            home = str(vnet["location"]) if vnet else None
            self._subnets[region] = self.target.subnet_id if home == region else self._own_subnet(region)
        return self._subnets[region]

    def _own_subnet(self, region: str) -> str:
        path = self._network_path("virtualNetworks", f"thrifty-{region}")
        if self._arm("GET", path) is None:
            subnet = {"name": "serving", "properties": {"addressPrefix": SUBNET_PREFIX}}
            space = {"addressSpace": {"addressPrefixes": [VNET_PREFIX]}, "subnets": [subnet]}
            self._put_and_wait(path, {"location": region, "tags": {SHARED_TAG: "true"}, "properties": space})
        return f"{path}/subnets/serving"

    def nsg_body(self, spec: DeploySpec, cidrs: tuple[str, ...]) -> dict[str, Any]:
        """The deployment's NSG: one inbound rule, tcp on the serving port from ``cidrs``."""
        rule = {
            "name": "thrifty-serving",
            "properties": {"priority": 1000, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                           "sourceAddressPrefixes": list(cidrs), "sourcePortRange": "*",
                           "destinationAddressPrefix": "*", "destinationPortRange": str(self.target.boot.port)},
        }  # fmt: skip
        tags = {MANAGED_KEY: "true", DEPLOYMENT_KEY: spec.name, CREATED_KEY: now_tag()}
        return {"location": spec.region, "tags": tags, "properties": {"securityRules": [rule]}}

    def _put_nsg(self, spec: DeploySpec, cidrs: tuple[str, ...]) -> bool:
        """Create the NSG, or update its rule when the range changed; True when it was created."""
        path = self._network_path("networkSecurityGroups", rule_name(spec.name))
        existing = self._arm("GET", path)
        body = self.nsg_body(spec, cidrs)
        if existing is not None:
            rules = existing.get("properties", {}).get("securityRules", [])
            if [r["properties"].get("sourceAddressPrefixes") for r in rules] == [list(cidrs)]:
                return False
            body["tags"][CREATED_KEY] = existing.get("tags", {}).get(CREATED_KEY, body["tags"][CREATED_KEY])
        self._put_and_wait(path, body)
        return existing is None

    def _delete_nsg(self, name: str) -> None:
        """Delete an NSG (after its VMs: ARM refuses one still attached) and wait until it is gone."""
        path = self._network_path("networkSecurityGroups", name)
        deadline = time.monotonic() + 600
        if self._arm("DELETE", path) is None:
            return
        while self._arm("GET", path) is not None and time.monotonic() < deadline:
            time.sleep(self.target.polling_interval_s)

    def _managed_nsgs(self) -> list[ManagedResource]:
        listed = self._arm("GET", self._network_path("networkSecurityGroups")) or {}
        return [
            ManagedResource(
                provider=self.name,
                kind="network-security-group",
                id=nsg["name"],
                region=nsg.get("location", ""),
                deployment_name=(nsg.get("tags") or {}).get(DEPLOYMENT_KEY, ""),
                created_at=parse_created((nsg.get("tags") or {}).get(CREATED_KEY)),
                details={"resource_group": self.target.resource_group},
            )
            for nsg in listed.get("value", [])
            if (nsg.get("tags") or {}).get(MANAGED_KEY) == "true"
        ]

    # -- VM bodies ---------------------------------------------------------------------------
    def vm_name(self, name: str, slot: int, suffix: str = "") -> str:
        return slot_name(name, slot, suffix)

    def market_of(self, spec: DeploySpec, slot: int) -> PriceModel:
        return slot_market(spec, slot)

    def vm_body(
        self,
        spec: DeploySpec,
        slot: int,
        *,
        market: PriceModel | None = None,
        suffix: str = "",
        fallback: bool = False,
    ) -> Any:
        """The VirtualMachine for one slot (also what ``--dry-run`` prints)."""
        from azure.mgmt.compute import models as m

        spot = (market or self.market_of(spec, slot)) is PriceModel.SPOT
        vm_name = self.vm_name(spec.name, slot, suffix)
        secret = self._secret_ref(spec)
        user_data = render_user_data(spec, self.target.boot, cloud="azure", secret=secret)
        publisher, offer, sku, version = self.target.image
        props = m.VirtualMachineProperties(
            hardware_profile=m.HardwareProfile(vm_size=spec.instance_type),
            storage_profile=m.StorageProfile(
                image_reference=m.ImageReference(publisher=publisher, offer=offer, sku=sku, version=version),
                os_disk=m.OSDisk(create_option="FromImage", delete_option="Delete"),
            ),
            os_profile=self._os_profile(vm_name, user_data),
            network_profile=self._network_profile(vm_name, *self._network_ids(spec)),
            priority="Spot" if spot else "Regular",
        )
        if spot:
            props.eviction_policy = self.target.eviction_policy
            props.billing_profile = m.BillingProfile(max_price=-1)
        reads_as_itself = secret or self._store_scope()  # Key Vault, the artifact container
        identity = m.VirtualMachineIdentity(type="SystemAssigned") if reads_as_itself else None
        tags = self._tags(spec, slot, fallback)
        return m.VirtualMachine(location=spec.region, tags=tags, properties=props, identity=identity)

    def _os_profile(self, vm_name: str, user_data: str) -> Any:
        from azure.mgmt.compute import models as m

        key_path = f"/home/{self.target.admin_username}/.ssh/authorized_keys"
        return m.OSProfile(
            computer_name=vm_name,
            admin_username=self.target.admin_username,
            custom_data=base64.b64encode(user_data.encode()).decode(),
            linux_configuration=m.LinuxConfiguration(
                disable_password_authentication=True,
                ssh=m.SshConfiguration(
                    public_keys=[m.SshPublicKey(path=key_path, key_data=self.target.ssh_public_key)]
                ),
            ),
        )

    def _network_profile(self, vm_name: str, subnet_id: str, nsg_id: str) -> Any:
        from azure.mgmt.compute import models as m

        return m.NetworkProfile(
            network_api_version="2020-11-01",
            network_interface_configurations=[
                m.VirtualMachineNetworkInterfaceConfiguration(
                    name=f"{vm_name}-nic",
                    properties=m.VirtualMachineNetworkInterfaceConfigurationProperties(
                        primary=True,
                        delete_option="Delete",
                        network_security_group=m.SubResource(id=nsg_id),
                        ip_configurations=[
                            m.VirtualMachineNetworkInterfaceIPConfiguration(
                                name="ipconfig1",
                                properties=m.VirtualMachineNetworkInterfaceIPConfigurationProperties(
                                    subnet=m.SubResource(id=subnet_id),
                                    public_ip_address_configuration=self._public_ip(vm_name),
                                ),
                            )
                        ],
                    ),
                )
            ],
        )

    def _public_ip(self, vm_name: str) -> Any:
        """A Standard static public IP deleted with the VM (``public_ip``, the default): new VMs get no
        default outbound access, and the boot pulls the image and the artifact; None without it."""
        from azure.mgmt.compute import models as m

        if not self.target.public_ip:
            return None
        return m.VirtualMachinePublicIPAddressConfiguration(
            name=f"{vm_name}-ip",
            sku=m.PublicIPAddressSku(name="Standard", tier="Regional"),
            properties=m.VirtualMachinePublicIPAddressConfigurationProperties(
                delete_option="Delete", public_ip_allocation_method="Static"
            ),
        )

    def _tags(self, spec: DeploySpec, slot: int, fallback: bool = False) -> dict[str, str]:
        from thrifty.providers.k8s_manifests import spec_annotation

        tags = {
            MANAGED_KEY: "true",
            DEPLOYMENT_KEY: spec.name,
            SLOT_TAG: str(slot),
            REPLICAS_TAG: str(spec.replicas),
            SPEC_TAG: spec_annotation(spec),
        }
        if fallback:
            tags[FALLBACK_TAG] = "on-demand"
        return tags

    # -- VMs ---------------------------------------------------------------------------------
    def _list(self, name: str | None = None) -> list[Any]:
        rg = self.target.resource_group
        vms = self._call("list VMs", lambda **kw: list(self.client.virtual_machines.list(rg, **kw)))
        return [
            vm
            for vm in vms
            if (vm.tags or {}).get(MANAGED_KEY) == "true"
            and (name is None or (vm.tags or {}).get(DEPLOYMENT_KEY) == name)
        ]

    def _power_state(self, vm_name: str) -> str:
        vm = self._call(
            f"get {vm_name}",
            self.client.virtual_machines.get,
            self.target.resource_group,
            vm_name,
            expand="instanceView",
        )
        statuses = vm.instance_view.statuses if vm.instance_view else []
        codes = [s.code for s in statuses or [] if s.code and s.code.startswith("PowerState/")]
        return codes[0].removeprefix("PowerState/") if codes else "unknown"

    def _create(
        self, spec: DeploySpec, slot: int, created: list[str], *, market: PriceModel, suffix: str = ""
    ) -> str:
        """Create one slot's VM (a spot refusal falls back to Regular, tagged); names go to ``created``."""
        try:
            return self._create_one(spec, slot, created, market=market, suffix=suffix)
        except CapacityError:
            if market is not PriceModel.SPOT or not self.target.spot_fallback_on_demand:
                raise
        return self._create_one(
            spec, slot, created, market=PriceModel.ON_DEMAND, suffix=suffix + "od", fallback=True
        )

    def _create_one(
        self,
        spec: DeploySpec,
        slot: int,
        created: list[str],
        *,
        market: PriceModel,
        suffix: str,
        fallback: bool = False,
    ) -> str:
        body = self.vm_body(spec, slot, market=market, suffix=suffix, fallback=fallback)
        vm_name = self.vm_name(spec.name, slot, suffix)
        try:
            vm = self._await(
                f"create {vm_name} in {spec.region}",
                self.client.virtual_machines.begin_create_or_update,
                self.target.resource_group,
                vm_name,
                body,
            )
            if body.identity is not None:  # it reads as itself: give it the roles it reads with
                for scope, role, what in self._role_scopes(vault=bool(self._secret_ref(spec))):
                    self._grant(scope, role, what, spec.name, vm_name, str(vm.identity.principal_id))
        except ThriftyError:
            self._delete_vm(vm_name)  # ARM keeps a VM whose allocation failed; it would bill its disk
            raise
        created.append(vm_name)
        return vm_name

    def _delete_vm(self, vm_name: str) -> None:
        """Delete a VM, and first its role assignments (the identity goes with the VM)."""
        if self._role_scopes() and not self._dry_run:
            self._revoke_roles(vm_name)
        try:
            self._await(
                f"delete {vm_name}",
                self.client.virtual_machines.begin_delete,
                self.target.resource_group,
                vm_name,
            )
        except NotFoundError:
            return

    def _spec_of(self, name: str) -> tuple[DeploySpec, list[Any]]:
        from thrifty.providers.k8s_manifests import spec_from_annotation

        found = self._list(name)
        for vm in found:
            if SPEC_TAG in (vm.tags or {}):
                return spec_from_annotation(vm.tags[SPEC_TAG]), found
        raise NotFoundError(
            f"no Azure deployment named {name!r} in resource group {self.target.resource_group}",
            hint="deploy it first (`thrifty deploy … --target azure`)",
        )

    # -- replica API (spot-rebalance) -------------------------------------------------------
    def replicas(self, name: str) -> list[Replica]:
        return [self._replica(vm) for vm in self._list(name)]

    def _replica(self, vm: Any) -> Replica:
        tags = vm.tags or {}
        failed = (vm.provisioning_state or "") == "Failed"
        created = getattr(vm, "time_created", None)
        return Replica(
            id=vm.name,
            slot=int(tags.get(SLOT_TAG, "0")),
            market=PriceModel.SPOT if (vm.priority or "Regular") == "Spot" else PriceModel.ON_DEMAND,
            state="failed" if failed else _STATES.get(self._power_state(vm.name), "stopped"),
            fallback=tags.get(FALLBACK_TAG) == "on-demand",
            launched_at=created.astimezone(UTC) if created else None,
        )

    def desired_markets_of(self, name: str) -> list[PriceModel]:
        spec, found = self._spec_of(name)
        if all(self._power_state(vm.name) in ("deallocated", "deallocating", "stopped") for vm in found):
            return []  # hibernated: nothing to replace until woken
        replicas = max(int((vm.tags or {}).get(REPLICAS_TAG, spec.replicas)) for vm in found)
        return [self.market_of(spec, slot) for slot in range(replicas)]

    def launch_replica(
        self, name: str, slot: int, market: PriceModel, *, replaces: str = "", allow_fallback: bool = True
    ) -> Replica:
        spec, _ = self._spec_of(name)
        spec = spec.with_changes(replicas=len(self.desired_markets_of(name)) or spec.replicas)
        suffix, created = uuid.uuid4().hex[:4], list[str]()
        if allow_fallback:
            vm_name = self._create(spec, slot, created, market=market, suffix=suffix)
        else:
            vm_name = self._create_one(spec, slot, created, market=market, suffix=suffix)
        return next(r for r in self.replicas(name) if r.id == vm_name)

    def retire_replica(self, name: str, replica_id: str) -> None:
        self._delete_vm(replica_id)

    # -- Provider protocol -------------------------------------------------------------------
    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        require(self, spec)
        if not _NAME.fullmatch(spec.name) or len(spec.name) > 50:
            raise ConfigError(
                f"deployment name {spec.name!r} is not a valid Azure VM name here",
                hint="use lowercase letters, digits and '-', at most 50 characters",
            )
        cidrs = source_ranges(spec, self.target.boot.allowed_cidrs)  # refused before anything exists
        render_user_data(spec, self.target.boot, cloud="azure")  # no image: refused here too
        if self._secret_ref(spec):
            self._vault_scope()  # a vault whose resource id cannot be told: refused here too
        covered = {int((vm.tags or {}).get(SLOT_TAG, "0")) for vm in self._list(spec.name)}
        created: list[str] = []
        nsg_created = secret_created = False
        try:
            secret_created = self._put_secret(spec)
            nsg_created = self._put_nsg(spec, cidrs)
            for slot in range(spec.replicas):
                if slot not in covered:
                    self._create(spec, slot, created, market=self.market_of(spec, slot))
        except ThriftyError:
            for vm_name in created:
                self._delete_vm(vm_name)
            if nsg_created:
                self._delete_nsg(rule_name(spec.name))
            if secret_created:
                self._vault().delete(secret_name(spec.name))
            raise
        for vm in self._list(spec.name):
            if int((vm.tags or {}).get(SLOT_TAG, "0")) >= spec.replicas:
                self._delete_vm(vm.name)
        return self.status(spec.name)

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        if replicas < 0:
            raise ConfigError(f"replicas={replicas} is negative", hint="pass 0 or more")
        spec, _ = self._spec_of(name)
        self.deploy(spec.with_changes(replicas=replicas))
        for vm in self._list(name):
            if (vm.tags or {}).get(REPLICAS_TAG) != str(replicas):
                self._retag(vm, {**(vm.tags or {}), REPLICAS_TAG: str(replicas)})
        return self.status(name)

    def _retag(self, vm: Any, tags: dict[str, str]) -> None:
        from azure.mgmt.compute import models as m

        self._await(
            f"update tags of {vm.name}",
            self.client.virtual_machines.begin_update,
            self.target.resource_group,
            vm.name,
            m.VirtualMachineUpdate(tags=tags),
        )

    def _each(self, name: str, verb: str) -> DeploymentStatus:
        _, found = self._spec_of(name)
        begin = getattr(self.client.virtual_machines, f"begin_{verb}")
        for vm in found:
            self._await(f"{verb} {vm.name}", begin, self.target.resource_group, vm.name)
        return self.status(name)

    def hibernate(self, name: str) -> DeploymentStatus:
        return self._each(name, "deallocate")

    def wake(self, name: str) -> DeploymentStatus:
        return self._each(name, "start")

    def status(self, name: str) -> DeploymentStatus:
        found = self._list(name)
        if not found:
            return DeploymentStatus(name, self.name, "deleted", 0, 0)
        spec, _ = self._spec_of(name)
        power = {vm.name: self._power_state(vm.name) for vm in found}
        running = [n for n, state in power.items() if state == "running"]
        stopped = all(state in ("deallocated", "deallocating", "stopped") for state in power.values())
        wanted = max(int((vm.tags or {}).get(REPLICAS_TAG, spec.replicas)) for vm in found)
        desired = 0 if stopped else wanted
        state = "hibernated" if stopped else "running" if len(running) >= desired else "pending"
        return DeploymentStatus(
            name=name,
            provider=self.name,
            state=state,
            replicas_desired=desired,
            replicas_ready=len(running),
            resources=tuple(self._resource(vm) for vm in found),
            details={"power_states": power, "serves": _serves(spec, self.target.key_vault_url)},
        )

    def delete(self, name: str) -> None:
        for vm in self._list(name):
            self._delete_vm(vm.name)
        self._delete_nsg(rule_name(name))
        if self.target.key_vault_url:
            self._vault().delete(secret_name(name))

    def store_credentials(self) -> Any:
        """The bearer source the deploy copies a variant into an ``az://`` store with: this
        provider's own credential, asked for a https://storage.azure.com token."""
        from thrifty.artifacts.bearer import AzureCredentialBearer

        return AzureCredentialBearer(self.credential)

    # -- the VMs' roles on the vault and the artifact container (``azure_roles``) ------------------
    def _vault_scope(self) -> str:
        t = self.target
        return roles.vault_scope(str(t.key_vault_url), t.key_vault_id, t.subscription_id, t.resource_group)

    def _store_scope(self) -> str | None:
        """The artifact container's ARM id for an ``az://`` store (None for another cloud's store)."""
        t = self.target
        return roles.container_scope(
            t.boot.artifact_store_url, t.storage_account_id, t.subscription_id, t.resource_group
        )

    def _role_scopes(self, vault: bool | None = None) -> list[tuple[str, str, str]]:
        """(scope, role, what) of each role a VM's identity gets; ``vault`` None: when a vault is set."""
        found: list[tuple[str, str, str]] = []
        if self.target.key_vault_url if vault is None else vault:
            found.append((self._vault_scope(), roles.KEY_VAULT_SECRETS_USER, "the Key Vault"))
        if store := self._store_scope():
            found.append((store, roles.STORAGE_BLOB_DATA_READER, "the artifact container"))
        return found

    def _grant(
        self, scope: str, role: str, where: str, deployment: str, vm_name: str, principal: str
    ) -> None:
        """Assign ``role`` at ``scope`` to the VM's identity; retries PrincipalNotFound (a new
        identity ARM's directory has not replicated yet) until ``role_grant_deadline_s``."""
        path = roles.assignment_path(scope, principal, role)
        body = roles.assignment_body(self.target.subscription_id, principal, deployment, vm_name, role)
        what = f"PUT role assignment of {vm_name} on {where}"
        deadline = time.monotonic() + self.target.role_grant_deadline_s
        while True:
            response = self._send_arm(what, "PUT", path, body, roles.ROLE_API)
            code = _error_code(response)
            if response.status_code < 400 or code == "RoleAssignmentExists":
                return
            if code != "PrincipalNotFound" or time.monotonic() > deadline:
                raise self._arm_error(response, what)
            _log.info(
                "Azure has not replicated the identity of %s yet; retrying its role assignment", vm_name
            )
            time.sleep(self.target.polling_interval_s)

    def _revoke_roles(self, vm_name: str) -> None:
        """Delete the role assignments of ``vm_name``'s identity (none: nothing to do)."""
        try:
            vm = self._call(
                f"get {vm_name}", self.client.virtual_machines.get, self.target.resource_group, vm_name
            )
        except NotFoundError:
            return
        principal = getattr(vm.identity, "principal_id", None) if vm.identity else None
        for scope, role, _ in self._role_scopes() if principal else []:
            self._arm("DELETE", roles.assignment_path(scope, str(principal), role), api=roles.ROLE_API)

    def _managed_role_assignments(self) -> list[ManagedResource]:
        """thrifty's role assignments on the vault and the container (the mark in their description)."""
        found: list[ManagedResource] = []
        for scope, _, _ in self._role_scopes():
            listed = self._arm("GET", scope + roles.ASSIGNMENTS, api=roles.ROLE_API) or {}
            found += [
                self._grant_resource(item, scope)
                for item in listed.get("value", [])
                if roles.marked(item, scope) is not None
            ]
        return found

    def _grant_resource(self, item: Mapping[str, Any], scope: str) -> ManagedResource:
        deployment, vm = roles.marked(item, scope) or ("", "")
        return ManagedResource(
            provider=self.name,
            kind="role-assignment",
            id=str(item["id"]),
            region="",
            deployment_name=deployment,
            created_at=parse_created((item.get("properties") or {}).get("createdOn")),
            details={"vm": vm, "scope": scope},
        )

    # -- the deployment's secret (TLS key, certificate, token digest) in Key Vault ------------------
    def _vault(self) -> Any:
        from thrifty.providers.azure_secrets import AzureKeyVault

        return AzureKeyVault(str(self.target.key_vault_url), self.credential)

    def _secret_ref(self, spec: DeploySpec) -> str:
        """The VM's ``THRIFTY_SECRET`` (a reference, never the key); "" serves plain HTTP."""
        if not (self.target.key_vault_url and spec.serving.get("tls_cert_sha256")):
            return ""
        return f"azure-keyvault:{self.target.key_vault_url.rstrip('/')}/secrets/{secret_name(spec.name)}"

    def _put_secret(self, spec: DeploySpec) -> bool:
        """Store the spec's bundle; True when the secret is new. A spec rebuilt from the VMs' tags
        (scale, a spot replacement) has no bundle: its VMs read the secret already there."""
        if not self.target.key_vault_url:
            if not self._dry_run:
                _log.warning(PLAIN_HTTP, spec.name)
            return False
        if spec.secret_bundle is None:
            return False
        tags = {MANAGED_KEY: "true", DEPLOYMENT_KEY: spec.name, CREATED_KEY: now_tag()}
        return bool(self._vault().put(secret_name(spec.name), spec.secret_bundle.get_secret_value(), tags))

    def list_managed(self) -> list[ManagedResource]:
        vms = [self._resource(vm) for vm in self._list()]
        return vms + self._managed_nsgs() + self._managed_secrets() + self._managed_grants()

    def _managed_grants(self) -> list[ManagedResource]:
        return [] if self._dry_run else self._managed_role_assignments()

    def _managed_secrets(self) -> list[ManagedResource]:
        """thrifty's Key Vault secrets (none without a vault); gc deletes those of gone deployments."""
        if not self.target.key_vault_url or self._dry_run:
            return []
        return [
            ManagedResource(
                provider=self.name,
                kind="key-vault-secret",
                id=name,
                region="",
                deployment_name=tags.get(DEPLOYMENT_KEY, ""),
                created_at=parse_created(tags.get(CREATED_KEY)) or created,
                details={"vault": self.target.key_vault_url},
            )
            for name, tags, created in self._vault().list_tagged(MANAGED_KEY, "true")
        ]

    def _resource(self, vm: Any) -> ManagedResource:
        created = getattr(vm, "time_created", None)
        return ManagedResource(
            provider=self.name,
            kind="virtual-machine",
            id=vm.name,
            region=vm.location,
            deployment_name=(vm.tags or {}).get(DEPLOYMENT_KEY, ""),
            created_at=created.astimezone(UTC) if created else None,
            details={"priority": vm.priority or "Regular", "resource_group": self.target.resource_group},
        )

    def delete_resource(self, resource: ManagedResource) -> None:
        if resource.kind == "network-security-group":
            self._delete_nsg(resource.id)
        elif resource.kind == "key-vault-secret":
            self._vault().delete(resource.id)
        elif resource.kind == "role-assignment":
            self._arm("DELETE", resource.id, api=roles.ROLE_API)
        else:
            self._delete_vm(resource.id)


def _error_code(response: Any) -> str:
    """The ARM error code of a failed response ("" for a success or a body that is not ARM's)."""
    if response.status_code < 400:
        return ""
    try:
        return str((response.json().get("error") or {}).get("code") or "")
    except (ValueError, AttributeError):
        return ""


def _serves(spec: DeploySpec, key_vault_url: str | None) -> str:
    """What the deploy summary says of the endpoint's protocol."""
    if spec.serving.get("tls_cert_sha256") and key_vault_url:
        return "https (pinned certificate; key in Key Vault)"
    return "plain http (the Azure target has no key_vault_url)"
