"""GCP Compute Engine target: one VM per replica, spot through ``provisioning_model=SPOT``.

- Instance ``thrifty-<name>-<slot>`` in the zone of the spec (a region gets the target's zone
  suffix); a replacement made by ``spot-rebalance`` gets a random suffix, since the old VM still
  drains under its name. Slots below the on-demand floor are STANDARD; the rest follow the price
  model; spot VMs have an ``instance_termination_action`` (DELETE by default, or STOP) and no
  automatic restart. A spot stockout falls back to STANDARD, labelled ``thrifty-fallback``, so the
  rebalance moves it back (set ``spot_fallback_on_demand=False`` to fail over to the plan's next
  candidate instead).
- GPUs: the catalog's ``n1-highmem-4+T4x1`` is sent as machine type ``n1-highmem-4`` with one
  guestAccelerator ``zones/<zone>/acceleratorTypes/nvidia-tesla-t4``; every GPU VM (attached, or
  bundled with a2/a3/a4/g2) gets ``onHostMaintenance: TERMINATE``, since GCE refuses live migration
  for them. A zone that does not sell the GPU answers "acceleratorTypes/... was not found", which
  becomes ``CapacityError`` (the plan's next candidate may be in a zone that sells it).
- The cloud-init user data of ``boot`` rides in the ``user-data`` metadata item; the
  deployment's spec rides in ``thrifty-spec`` so ``scale`` needs nothing but the cloud.
- Ownership: labels ``thrifty-managed=true`` and ``thrifty-deployment=<name>``.
- Each insert carries a fresh ``requestId``, so the client's own retries of that call are no-ops on
  GCP; a second deploy finds the instances by name and inserts nothing. Every mutation returns a zonal operation that is polled until DONE; an operation that
  ends with an error is translated like an HTTP error (``ZONE_RESOURCE_POOL_EXHAUSTED`` →
  ``CapacityError``, ``QUOTA_EXCEEDED`` → ``QuotaExceededError``).
- A deploy that fails half-way deletes the instances it created.
- Network rule: a firewall rule ``thrifty-<name>`` (INGRESS, tcp on the serving port, from the
  source range of ``providers.network``) targets the network tag ``thrifty-<name>`` that every VM
  of the deployment carries. GCE opens a rule with no ``sourceRanges`` to 0.0.0.0/0 and applies one
  with no ``targetTags`` to every VM of the network, so both are always set. Firewall rules take no
  labels: ownership and creation time ride in the rule's ``description`` (JSON). The rule is
  inserted before the VMs (a global operation, polled like the zonal ones) and deleted after them
  on delete, rollback and gc.
- Zones: a plan's zone is used as it is. A plan naming only a region gets a zone GCE lists as UP in
  that region: ``<region>-<zone_suffix>`` when there is one, else the first (europe-west1 has no
  ``-a``); on ``--dry-run`` (no request sent) the suffix is assumed.
- A ``gs://`` artifact store: the VMs read it as the target's service account, which the deploy
  makes sure holds ``roles/storage.objectViewer`` on the bucket (``gcs_iam``: the bucket's IAM
  policy, read and written with its etag) before any VM exists. A target without
  ``service_account_email`` is refused then (its VMs would have no identity to read with). The
  binding stays after a delete: the service account serves every deployment of the target.

The client is ``google-cloud-compute`` (REST transport); tests point ``api_endpoint`` at a local
server with ``AnonymousCredentials``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from thrifty.catalog.accelerators import (
    GCP_ATTACHABLE,
    GCP_BUNDLED_GPU_FAMILIES,
    N1_GPU_HOST,
    split_gcp_type,
)
from thrifty.errors import (
    CapacityError,
    ConfigError,
    CredentialsError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    ThriftyError,
)
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
from thrifty.providers.gc import DEPLOYMENT_LABEL, MANAGED_LABEL, label_value
from thrifty.providers.network import parse_created, rule_name, source_ranges

_log = logging.getLogger(__name__)

SPEC_METADATA_KEY = "thrifty-spec"
REPLICAS_LABEL = "thrifty-replicas"
SLOT_LABEL = "thrifty-slot"
FALLBACK_LABEL = "thrifty-fallback"
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_ZONE = re.compile(r".+-[a-z]$")
_CAPACITY_CODES = {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "STOCKOUT"}
_QUOTA_CODES = {"QUOTA_EXCEEDED", "quotaExceeded", "rateLimitExceeded"}
_STATES = {
    "PROVISIONING": "pending",
    "STAGING": "pending",
    "RUNNING": "running",
    "STOPPING": "stopping",
    "TERMINATED": "stopped",
    "SUSPENDED": "stopped",
    "REPAIRING": "pending",
}


@dataclass(frozen=True)
class GcpTarget:
    """Where and how to launch on GCP (plain config; the block builds it)."""

    project: str
    zone_suffix: str = "a"
    network: str = "global/networks/default"
    public_ip: bool = True
    image: str = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"
    service_account_email: str | None = None
    termination_action: str = "DELETE"
    api_endpoint: str | None = None
    spot_fallback_on_demand: bool = True
    poll_s: float = 2.0
    operation_timeout_s: float = 600.0
    boot: BootConfig = field(default_factory=lambda: BootConfig(artifact_store_url="s3://thrifty-artifacts"))

    def __post_init__(self) -> None:
        if self.termination_action not in ("DELETE", "STOP"):
            raise ConfigError(f"termination_action={self.termination_action!r}", hint="use DELETE or STOP")


def _translate_codes(codes: list[str], message: str, what: str) -> ThriftyError:
    text = f"GCP {what} failed: {', '.join(codes) or 'error'}: {message}"
    if any(code in _CAPACITY_CODES for code in codes):
        return CapacityError(text, hint="the zone is out of this machine type; try the plan's next candidate")
    if any(code in _QUOTA_CODES for code in codes):
        return QuotaExceededError(text, hint="raise the Compute Engine quota (IAM & Admin → Quotas)")
    return ProviderError(text, hint="see the GCP error code in the message")


def _translate(exc: Exception, what: str) -> ThriftyError:
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import GoogleAuthError

    if isinstance(exc, GoogleAuthError):
        return CredentialsError(f"GCP {what}: no usable credentials", hint="configure a GcpCredentials block")
    if not isinstance(exc, gexc.GoogleAPICallError):
        return ProviderError(
            f"GCP {what} failed: {type(exc).__name__}", hint="check the endpoint and network"
        )
    reasons = [str(getattr(exc, "reason", "") or "")] + [
        str(err.get("reason", "")) for err in (exc.errors or []) if isinstance(err, dict)
    ]
    codes = [r for r in reasons if r]
    if isinstance(exc, gexc.Unauthenticated):
        return CredentialsError(f"GCP {what} refused: {exc.message}", hint="refresh the service account key")
    if any(code in _QUOTA_CODES for code in codes) or "Quota" in str(exc.message):
        return QuotaExceededError(
            f"GCP {what} refused: {exc.message}", hint="raise the Compute Engine quota (IAM & Admin → Quotas)"
        )
    if isinstance(exc, gexc.Forbidden | gexc.PermissionDenied):
        return CredentialsError(
            f"GCP {what} refused: {exc.message}",
            hint="grant the service account roles/compute.instanceAdmin.v1 on the project",
        )
    if "/acceleratorTypes/" in str(exc.message):
        return CapacityError(
            f"GCP {what} refused: {exc.message} (the zone does not sell this GPU)",
            hint="deploy the plan's next candidate (another zone), or refresh prices: offers list GPUs only "
            "in zones that sell them",
        )
    if "does not exist in zone" in str(exc.message):
        return CapacityError(
            f"GCP {what} refused: {exc.message} (the zone does not sell this machine type)",
            hint="deploy the plan's next candidate (another zone), or refresh prices: offers list machine "
            "types only in zones that sell them",
        )
    if isinstance(exc, gexc.NotFound):
        return NotFoundError(f"GCP {what}: {exc.message}", hint="it may have been deleted outside thrifty")
    return _translate_codes(codes, str(exc.message), what)


class GcpProvider:
    name: ClassVar[str] = "gcp"
    secret_store: ClassVar[str] = "Secret Manager"
    unsupported: ClassVar[Mapping[Feature, str]] = {
        Feature.SCALE_TO_ZERO: "Compute Engine VMs do not scale to zero on requests; use hibernate",
    }

    def __init__(self, target: GcpTarget, *, credentials: Any = None) -> None:
        from google.cloud import compute_v1

        options = {"api_endpoint": target.api_endpoint} if target.api_endpoint else None
        kwargs: dict[str, Any] = {"credentials": credentials, "transport": "rest", "client_options": options}
        self.target = target
        self.credentials = credentials
        self.instances = compute_v1.InstancesClient(**kwargs)
        self.operations = compute_v1.ZoneOperationsClient(**kwargs)
        self.firewalls = compute_v1.FirewallsClient(**kwargs)
        self.global_operations = compute_v1.GlobalOperationsClient(**kwargs)
        self.zones = compute_v1.ZonesClient(**kwargs)
        self._zones_of: dict[str, list[str]] = {}
        self._dry_run = False

    # -- vendor boundary ------------------------------------------------------------------

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, boot: BootConfig, dry_run: bool) -> GcpProvider:
        """The provider the CLI builds (credentials: Application Default Credentials; none on dry run)."""
        if not options.get("project"):
            raise ConfigError("no GCP project", hint="pass --project or set THRIFTY_GCP_PROJECT")
        credentials = None
        if dry_run:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        provider = cls(GcpTarget(project=options["project"], boot=boot), credentials=credentials)
        provider._dry_run = dry_run
        return provider

    def dry_run_document(self, spec: DeploySpec) -> Any:
        """What ``thrifty deploy --dry-run`` prints: one instance body per replica."""
        return [type(b).to_dict(b) for b in (self.instance_body(spec, s) for s in range(spec.replicas))]

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from google.api_core.exceptions import GoogleAPICallError
        from google.auth.exceptions import GoogleAuthError

        try:
            return fn(**kwargs)
        except (GoogleAPICallError, GoogleAuthError) as exc:
            raise _translate(exc, what) from exc

    def _wait(self, operation: Any, zone: str | None, what: str) -> None:
        """Poll a zonal (global when ``zone`` is None) operation until DONE; its error (if any) becomes
        a thrifty error."""
        from google.cloud import compute_v1

        deadline = time.monotonic() + self.target.operation_timeout_s
        while operation.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"GCP {what}: operation {operation.name} still running", hint="look in the console"
                )
            time.sleep(self.target.poll_s)
            operation = self._poll(operation.name, zone, what)
        if operation.error and operation.error.errors:
            errors = operation.error.errors
            raise _translate_codes([e.code for e in errors], "; ".join(e.message for e in errors), what)

    def _poll(self, name: str, zone: str | None, what: str) -> Any:
        project = self.target.project
        if zone is None:
            return self._call(what, self.global_operations.get, project=project, operation=name)
        return self._call(what, self.operations.get, project=project, zone=zone, operation=name)

    # -- firewall rule ---------------------------------------------------------------------
    def firewall_body(self, name: str, cidrs: tuple[str, ...]) -> Any:
        """The deployment's firewall rule: tcp on the serving port, from ``cidrs``, to its tag only."""
        from google.cloud import compute_v1

        marks = {MANAGED_LABEL: "true", DEPLOYMENT_LABEL: name, "created-at": datetime.now(UTC).isoformat()}
        return compute_v1.Firewall(
            name=rule_name(name),
            network=self.target.network,
            direction="INGRESS",
            priority=1000,
            allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=[str(self.target.boot.port)])],
            source_ranges=list(cidrs),
            target_tags=[rule_name(name)],
            description=json.dumps(marks, sort_keys=True),
        )

    def _find_firewall(self, name: str) -> Any | None:
        what = f"get firewall {rule_name(name)}"
        try:
            return self._call(what, self.firewalls.get, project=self.target.project, firewall=rule_name(name))
        except NotFoundError:
            return None

    def _put_firewall(self, name: str, cidrs: tuple[str, ...]) -> bool:
        """Insert the rule, or patch its source range when it changed; True when it was inserted."""
        existing = self._find_firewall(name)
        body = self.firewall_body(name, cidrs)
        project = self.target.project
        if existing is None:
            what = f"insert firewall {body.name}"
            operation = self._call(what, self.firewalls.insert_unary, project=project, firewall_resource=body)
            self._wait(operation, None, what)
            return True
        if sorted(existing.source_ranges) != sorted(cidrs) or list(existing.target_tags) != [body.name]:
            what = f"patch firewall {body.name}"
            patch = type(body)(source_ranges=list(cidrs), target_tags=[body.name], allowed=body.allowed)
            operation = self._call(
                what, self.firewalls.patch_unary, project=project, firewall=body.name, firewall_resource=patch
            )
            self._wait(operation, None, what)
        return False

    def _delete_firewall(self, rule: str) -> None:
        what = f"delete firewall {rule}"
        try:
            operation = self._call(
                what, self.firewalls.delete_unary, project=self.target.project, firewall=rule
            )
            self._wait(operation, None, what)
        except NotFoundError:
            return

    def _managed_firewalls(self) -> list[ManagedResource]:
        rules = self._call("list firewalls", lambda: list(self.firewalls.list(project=self.target.project)))
        found = []
        for rule in rules:
            marks = _marks(rule.description)
            if marks.get(MANAGED_LABEL) == "true":
                found.append(
                    ManagedResource(
                        provider=self.name,
                        kind="firewall",
                        id=rule.name,
                        region="global",
                        deployment_name=marks.get(DEPLOYMENT_LABEL, ""),
                        created_at=parse_created(rule.creation_timestamp or marks.get("created-at")),
                        details={"source_ranges": list(rule.source_ranges)},
                    )
                )
        return found

    # -- instance bodies ---------------------------------------------------------------------
    def zone_of(self, spec: DeploySpec) -> str:
        if _ZONE.fullmatch(spec.region):
            return spec.region
        preferred = f"{spec.region}-{self.target.zone_suffix}"
        if self._dry_run:
            return preferred
        zones = self._zones_in(spec.region)
        if not zones:
            raise ConfigError(
                f"GCP region {spec.region!r} has no zone that is UP in project {self.target.project}",
                hint="plan again with a region GCP sells in, or name a zone (e.g. us-central1-a)",
            )
        return preferred if preferred in zones else zones[0]

    def _zones_in(self, region: str) -> list[str]:
        """The zones GCE lists as UP in ``region`` (asked once per provider)."""
        if region not in self._zones_of:
            listed = self._call("list zones", lambda: list(self.zones.list(project=self.target.project)))
            self._zones_of[region] = sorted(
                z.name for z in listed if z.region.endswith(f"/regions/{region}") and z.status == "UP"
            )
        return self._zones_of[region]

    def instance_name(self, name: str, slot: int, suffix: str = "") -> str:
        return slot_name(name, slot, suffix)

    def market_of(self, spec: DeploySpec, slot: int) -> PriceModel:
        return slot_market(spec, slot)

    def instance_body(
        self,
        spec: DeploySpec,
        slot: int,
        *,
        market: PriceModel | None = None,
        suffix: str = "",
        fallback: bool = False,
    ) -> Any:
        """The Instance resource for one slot (also what ``--dry-run`` prints)."""
        from google.cloud import compute_v1

        zone = self.zone_of(spec)
        machine, accelerators = machine_and_accelerators(spec.instance_type, zone)
        spot = (market or self.market_of(spec, slot)) is PriceModel.SPOT
        scheduling = compute_v1.Scheduling(
            provisioning_model="SPOT" if spot else "STANDARD",
            automatic_restart=not spot,
            # GPU VMs cannot live-migrate: GCE refuses MIGRATE for them
            on_host_maintenance="TERMINATE" if spot or has_gpu(machine, accelerators) else "MIGRATE",
        )
        if spot:
            scheduling.instance_termination_action = self.target.termination_action
        metadata = compute_v1.Metadata(
            items=[
                compute_v1.Items(
                    key="user-data",
                    value=render_user_data(
                        spec, self.target.boot, cloud="gcp", secret=self._secret_ref(spec)
                    ),
                ),
                compute_v1.Items(key=SPEC_METADATA_KEY, value=_spec_json(spec)),
            ]
        )
        body = compute_v1.Instance(
            name=self.instance_name(spec.name, slot, suffix),
            machine_type=f"zones/{zone}/machineTypes/{machine}",
            guest_accelerators=accelerators,
            scheduling=scheduling,
            labels=self._labels(spec.name, slot, "spot" if spot else "on-demand", spec.replicas, fallback),
            metadata=metadata,
            disks=[
                compute_v1.AttachedDisk(
                    boot=True,
                    auto_delete=True,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(source_image=self.target.image),
                )
            ],
            network_interfaces=[self._network_interface()],
            tags=compute_v1.Tags(items=[rule_name(spec.name)]),
        )
        if self.target.service_account_email:
            body.service_accounts = [
                compute_v1.ServiceAccount(
                    email=self.target.service_account_email,
                    scopes=["https://www.googleapis.com/auth/cloud-platform"],
                )
            ]
        return body

    def _network_interface(self) -> Any:
        """The VM's NIC; with ``public_ip`` (the default) one ephemeral external IP, which the VM needs
        to pull its image and artifact unless the subnet has Cloud NAT (set ``public_ip=False`` then)."""
        from google.cloud import compute_v1

        nic = compute_v1.NetworkInterface(network=self.target.network)
        if self.target.public_ip:
            nic.access_configs = [compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
        return nic

    def _labels(self, name: str, slot: int, market: str, replicas: int, fallback: bool) -> dict[str, str]:
        labels = {
            MANAGED_LABEL: "true",
            DEPLOYMENT_LABEL: label_value(name),
            SLOT_LABEL: str(slot),
            "thrifty-market": market,
            REPLICAS_LABEL: str(replicas),
        }
        if fallback:
            labels[FALLBACK_LABEL] = "on-demand"
        return labels

    # -- instances ---------------------------------------------------------------------------
    def _list(self, name: str | None = None) -> list[tuple[str, Any]]:
        """(zone, instance) of every managed instance, or of one deployment, in the project."""
        flt = f'labels.{MANAGED_LABEL} = "true"'
        if name is not None:
            flt += f' AND labels.{DEPLOYMENT_LABEL} = "{label_value(name)}"'
        from google.cloud import compute_v1

        request = compute_v1.AggregatedListInstancesRequest(project=self.target.project, filter=flt)
        pages = self._call("aggregated_list instances", self.instances.aggregated_list, request=request)
        found = []
        for scope, scoped in self._call("aggregated_list instances", lambda: list(pages)):
            found += [(scope.removeprefix("zones/"), inst) for inst in scoped.instances]
        return found

    def _insert(
        self,
        spec: DeploySpec,
        slot: int,
        *,
        market: PriceModel | None = None,
        suffix: str = "",
        fallback: bool = False,
    ) -> str:
        from google.cloud import compute_v1

        zone = self.zone_of(spec)
        body = self.instance_body(spec, slot, market=market, suffix=suffix, fallback=fallback)
        what = f"insert {body.name} in {zone}"
        request = compute_v1.InsertInstanceRequest(
            project=self.target.project, zone=zone, instance_resource=body, request_id=str(uuid.uuid4())
        )
        self._wait(self._call(what, self.instances.insert_unary, request=request), zone, what)
        return str(body.name)

    def _insert_with_fallback(
        self,
        spec: DeploySpec,
        slot: int,
        market: PriceModel,
        *,
        suffix: str = "",
        allow_fallback: bool = True,
    ) -> str:
        """Insert one slot; a spot stockout falls back to STANDARD (labelled) when allowed."""
        try:
            return self._insert(spec, slot, market=market, suffix=suffix)
        except CapacityError:
            if market is not PriceModel.SPOT or not (allow_fallback and self.target.spot_fallback_on_demand):
                raise
        return self._insert(spec, slot, market=PriceModel.ON_DEMAND, suffix=suffix + "od", fallback=True)

    def _delete_instance(self, zone: str, instance: str) -> None:
        what = f"delete {instance} in {zone}"
        try:
            operation = self._call(
                what, self.instances.delete_unary, project=self.target.project, zone=zone, instance=instance
            )
            self._wait(operation, zone, what)
        except NotFoundError:
            return

    def _spec_of(self, name: str) -> tuple[DeploySpec, list[tuple[str, Any]]]:
        found = self._list(name)
        for _, inst in found:
            for item in inst.metadata.items:
                if item.key == SPEC_METADATA_KEY:
                    return _spec_from_json(item.value), found
        raise NotFoundError(
            f"no GCP deployment named {name!r} in project {self.target.project}",
            hint="deploy it first (`thrifty deploy … --target gcp`)",
        )

    # -- replica API (spot-rebalance) -------------------------------------------------------
    def replicas(self, name: str) -> list[Replica]:
        return [self._replica(zone, inst) for zone, inst in self._list(name)]

    def _replica(self, zone: str, inst: Any) -> Replica:
        from datetime import datetime

        created = inst.creation_timestamp
        return Replica(
            id=inst.name,
            slot=int(inst.labels.get(SLOT_LABEL, "0")),
            market=PriceModel.SPOT if inst.scheduling.provisioning_model == "SPOT" else PriceModel.ON_DEMAND,
            state=_STATES.get(inst.status, "stopped"),
            fallback=inst.labels.get(FALLBACK_LABEL) == "on-demand",
            endpoint_url=_endpoint(inst, self.target.boot.port),
            launched_at=datetime.fromisoformat(created) if created else None,
        )

    def desired_markets_of(self, name: str) -> list[PriceModel]:
        spec, found = self._spec_of(name)
        if all(inst.status in ("STOPPING", "TERMINATED", "SUSPENDED") for _, inst in found):
            return []  # hibernated (or every VM stopped): nothing to replace until woken
        replicas = max(int(inst.labels.get(REPLICAS_LABEL, spec.replicas)) for _, inst in found)
        return [self.market_of(spec, slot) for slot in range(replicas)]

    def launch_replica(
        self, name: str, slot: int, market: PriceModel, *, replaces: str = "", allow_fallback: bool = True
    ) -> Replica:
        spec, _ = self._spec_of(name)
        spec = spec.with_changes(replicas=len(self.desired_markets_of(name)) or spec.replicas)
        suffix = uuid.uuid4().hex[:4]
        created = self._insert_with_fallback(spec, slot, market, suffix=suffix, allow_fallback=allow_fallback)
        return next(r for r in self.replicas(name) if r.id == created)

    def retire_replica(self, name: str, replica_id: str) -> None:
        for zone, inst in self._list(name):
            if inst.name == replica_id:
                self._delete_instance(zone, inst.name)

    # -- Provider protocol -------------------------------------------------------------------
    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        require(self, spec)
        if not _NAME.fullmatch(self.instance_name(spec.name, 0)) or len(spec.name) > 50:
            raise ConfigError(
                f"deployment name {spec.name!r} is not a valid GCE instance name",
                hint="use lowercase letters, digits and '-', at most 50 characters",
            )
        cidrs = source_ranges(spec, self.target.boot.allowed_cidrs)  # refused before anything exists
        for slot in range(spec.replicas):
            self.instance_body(spec, slot)  # a type GCP cannot attach, or no image: refused here too
        self._grant_store_read()
        secret_created = self._put_secret(spec)
        covered = {int(inst.labels.get(SLOT_LABEL, "0")) for _, inst in self._list(spec.name)}
        created: list[str] = []
        rule_created = False
        try:
            rule_created = self._put_firewall(spec.name, cidrs)
            for slot in range(spec.replicas):
                if slot not in covered:
                    created.append(self._insert_with_fallback(spec, slot, self.market_of(spec, slot)))
        except ThriftyError:
            for instance in created:
                self._delete_instance(self.zone_of(spec), instance)
            if rule_created:
                self._delete_firewall(rule_name(spec.name))
            if secret_created:
                self._secrets().delete(secret_name(spec.name))
            raise
        for zone, inst in self._list(spec.name):
            if int(inst.labels.get(SLOT_LABEL, "0")) >= spec.replicas:
                self._delete_instance(zone, inst.name)
        return self.status(spec.name)

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        if replicas < 0:
            raise ConfigError(f"replicas={replicas} is negative", hint="pass 0 or more")
        spec, _ = self._spec_of(name)
        self.deploy(spec.with_changes(replicas=replicas))
        for zone, inst in self._list(name):
            if inst.labels.get(REPLICAS_LABEL) != str(replicas):
                self._set_labels(zone, inst, {**inst.labels, REPLICAS_LABEL: str(replicas)})
        return self.status(name)

    def _set_labels(self, zone: str, inst: Any, labels: Mapping[str, str]) -> None:
        from google.cloud import compute_v1

        what = f"set_labels {inst.name} in {zone}"
        request = compute_v1.SetLabelsInstanceRequest(
            project=self.target.project,
            zone=zone,
            instance=inst.name,
            instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
                labels=dict(labels), label_fingerprint=inst.label_fingerprint
            ),
        )
        self._wait(self._call(what, self.instances.set_labels_unary, request=request), zone, what)

    def _each(self, name: str, verb: str) -> DeploymentStatus:
        _, found = self._spec_of(name)
        method = getattr(self.instances, f"{verb}_unary")
        for zone, inst in found:
            what = f"{verb} {inst.name} in {zone}"
            operation = self._call(what, method, project=self.target.project, zone=zone, instance=inst.name)
            self._wait(operation, zone, what)
        return self.status(name)

    def hibernate(self, name: str) -> DeploymentStatus:
        return self._each(name, "stop")

    def wake(self, name: str) -> DeploymentStatus:
        return self._each(name, "start")

    def status(self, name: str) -> DeploymentStatus:
        found = self._list(name)
        if not found:
            return DeploymentStatus(name, self.name, "deleted", 0, 0)
        spec, _ = self._spec_of(name)
        running = [inst for _, inst in found if inst.status == "RUNNING"]
        stopped = all(inst.status in ("STOPPING", "TERMINATED", "SUSPENDED") for _, inst in found)
        wanted = max(int(inst.labels.get(REPLICAS_LABEL, spec.replicas)) for _, inst in found)
        desired = 0 if stopped else wanted
        state = "hibernated" if stopped else "running" if len(running) >= desired else "pending"
        endpoints = [_endpoint(inst, self.target.boot.port) for inst in running]
        return DeploymentStatus(
            name=name,
            provider=self.name,
            state=state,
            replicas_desired=desired,
            replicas_ready=len(running),
            endpoint_url=next((e for e in endpoints if e), None),
            resources=tuple(self._resource(zone, inst) for zone, inst in found),
            details={"endpoints": [e for e in endpoints if e]},
        )

    def delete(self, name: str) -> None:
        try:
            tls = bool(self._spec_of(name)[0].serving.get("tls_cert_sha256"))
        except NotFoundError:
            tls = False
        for zone, inst in self._list(name):
            self._delete_instance(zone, inst.name)
        self._delete_firewall(rule_name(name))
        if tls:
            self._secrets().delete(secret_name(name))

    def store_credentials(self) -> Any:
        """The bearer source the deploy copies a variant into a ``gs://`` store with: this provider's
        own credentials (Application Default Credentials when none were given, as the compute client)."""
        from thrifty.artifacts.bearer import GoogleCredentialsBearer

        credentials = self.credentials
        if credentials is None:
            import google.auth

            scopes = ["https://www.googleapis.com/auth/devstorage.read_write"]
            credentials = google.auth.default(scopes=scopes)[0]  # type: ignore[no-untyped-call]
        return GoogleCredentialsBearer(credentials)

    def _grant_store_read(self) -> None:
        """A ``gs://`` store: the VMs' service account gets roles/storage.objectViewer on the bucket."""
        boot = self.target.boot
        if not boot.artifact_store_url.startswith("gs://"):
            return
        if not self.target.service_account_email:
            raise ConfigError(
                f"the VMs read {boot.artifact_store_url} but the GCP target has no service_account_email",
                hint="set service_account_email (a VM without a service account has no identity to read GCS with)",
            )
        if self._dry_run:
            return
        from thrifty.providers.gcs_iam import grant_bucket_read

        bucket = boot.artifact_store_url.removeprefix("gs://").partition("/")[0]
        email = self.target.service_account_email
        if grant_bucket_read(bucket, email, self.store_credentials(), boot.store_endpoint_url):
            _log.info("gave %s roles/storage.objectViewer on gs://%s", email, bucket)

    # -- the deployment's secret (TLS key, certificate, token digest) in Secret Manager ----------
    def _secrets(self) -> Any:
        from thrifty.providers.gcp_secrets import GcpSecrets

        # the compute endpoint's override also moves Secret Manager (a loopback double serves both)
        endpoint = self.target.boot.secrets_endpoint_url or self.target.api_endpoint
        return GcpSecrets(self.target.project, self.credentials, endpoint)

    def _secret_ref(self, spec: DeploySpec) -> str:
        if not spec.serving.get("tls_cert_sha256"):
            return ""
        return f"gcp-secretmanager:projects/{self.target.project}/secrets/{secret_name(spec.name)}"

    def _put_secret(self, spec: DeploySpec) -> bool:
        if spec.secret_bundle is None:
            return False
        labels = {MANAGED_LABEL: "true", DEPLOYMENT_LABEL: label_value(spec.name)}
        return bool(
            self._secrets().put(secret_name(spec.name), spec.secret_bundle.get_secret_value(), labels)
        )

    def list_managed(self) -> list[ManagedResource]:
        return (
            [self._resource(zone, inst) for zone, inst in self._list()]
            + self._managed_firewalls()
            + self._managed_secrets()
        )

    def _managed_secrets(self) -> list[ManagedResource]:
        """thrifty's Secret Manager secrets (label ``thrifty-managed=true``); gc deletes orphans."""
        return [
            ManagedResource(
                provider=self.name,
                kind="secret",
                id=name,
                region="global",
                deployment_name=labels.get(DEPLOYMENT_LABEL, ""),
                created_at=created,
            )
            for name, labels, created in self._secrets().list_labeled(MANAGED_LABEL, "true")
        ]

    def _resource(self, zone: str, inst: Any) -> ManagedResource:
        from datetime import datetime

        created = inst.creation_timestamp
        return ManagedResource(
            provider=self.name,
            kind="instance",
            id=inst.name,
            region=zone,
            deployment_name=inst.labels.get(DEPLOYMENT_LABEL, ""),
            created_at=datetime.fromisoformat(created) if created else None,
            details={"status": inst.status, "market": inst.labels.get("thrifty-market", "")},
        )

    def delete_resource(self, resource: ManagedResource) -> None:
        if resource.kind == "firewall":
            self._delete_firewall(resource.id)
        elif resource.kind == "secret":
            self._secrets().delete(resource.id)
        else:
            self._delete_instance(resource.region, resource.id)


def machine_and_accelerators(instance_type: str, zone: str) -> tuple[str, list[Any]]:
    """The catalog's ``n1-highmem-4+T4x1`` → machine type ``n1-highmem-4`` + one guestAccelerator
    ``zones/<zone>/acceleratorTypes/nvidia-tesla-t4``; a plain machine type → (it, [])."""
    from google.cloud import compute_v1

    machine, accelerator, count = split_gcp_type(instance_type)
    if not accelerator:
        return machine, []
    gcp_type = GCP_ATTACHABLE.get(accelerator)
    if gcp_type is None or not N1_GPU_HOST.match(machine):
        raise ConfigError(
            f"GCP instance type {instance_type!r}: {accelerator} does not attach to {machine}",
            hint=f"GCP attaches {', '.join(GCP_ATTACHABLE)} to N1 machine types only; L4, A100 and H100 "
            "come with g2/a2/a3 machine types (plan again to get a sold pairing)",
        )
    config = compute_v1.AcceleratorConfig(
        accelerator_type=f"zones/{zone}/acceleratorTypes/{gcp_type}", accelerator_count=count
    )
    return machine, [config]


def has_gpu(machine: str, accelerators: list[Any]) -> bool:
    """Attached GPUs, or a machine family that comes with them (a2, a3, a4, g2, g4)."""
    return bool(accelerators) or machine.split("-")[0] in GCP_BUNDLED_GPU_FAMILIES


def _endpoint(inst: Any, port: int) -> str | None:
    scheme = "https" if _serves_tls(inst) else "http"
    for nic in inst.network_interfaces:
        for access in nic.access_configs:
            if access.nat_i_p:
                return f"{scheme}://{access.nat_i_p}:{port}"
        if nic.network_i_p:
            return f"{scheme}://{nic.network_i_p}:{port}"
    return None


def _marks(description: str) -> dict[str, str]:
    """The ownership marks thrifty writes in a firewall rule's description ({} for anyone else's)."""
    try:
        marks = json.loads(description or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in marks.items()} if isinstance(marks, dict) else {}


def _serves_tls(inst: Any) -> bool:
    """Whether the instance's spec (its metadata) pins a certificate: its container serves HTTPS."""
    for item in inst.metadata.items:
        if item.key == SPEC_METADATA_KEY:
            with contextlib.suppress(ValueError, AttributeError):
                return bool((json.loads(item.value).get("serving") or {}).get("tls_cert_sha256"))
    return False


def _spec_json(spec: DeploySpec) -> str:
    from thrifty.providers.k8s_manifests import spec_annotation

    return spec_annotation(spec)


def _spec_from_json(text: str) -> DeploySpec:
    from thrifty.providers.k8s_manifests import spec_from_annotation

    json.loads(text)  # a clear JSON error before the dataclass one
    return spec_from_annotation(text)
