"""AWS EC2 target: one launch template per deployment, on-demand and spot instances launched from it.

- The launch template (``thrifty-<name>``) holds the AMI, instance type, instance profile and the
  cloud-init user data (``boot``) that installs thrifty and serves the variant pulled
  from the S3 artifact store. Its tags hold the deployment's intent: desired replicas, price
  model, on-demand floor, hibernated.
- Each replica is one instance launched with ``RunInstances`` from the template, spot through
  ``InstanceMarketOptions`` (one-time, terminate on interruption). Slots ``0..floor-1`` are always
  on-demand (the floor); a spot launch refused for capacity falls back to on-demand and is tagged
  ``thrifty:fallback=on-demand`` so ``spot-rebalance`` moves it back when spot returns.
- Every launch carries a ``ClientToken`` derived from (deployment, template version, slot, what it
  replaces): a retried call returns the same instance on AWS. Deploy itself reconciles live
  instances against the desired count, so a second deploy launches nothing.
- Ownership: ``thrifty:managed=true`` and ``thrifty:deployment=<name>`` on the template and every
  instance; ``list_managed`` finds everything by those tags.
- A changed spec adds a template version; deploy then rolls each instance of an older version (or
  on a market the spec no longer wants) onto it, new instance first.
- A deploy that fails half-way terminates the instances and deletes the template it created.

Vendor errors become thrifty errors in ``_translate`` (the one boundary): e.g. an
``UnauthorizedOperation`` names the IAM action to grant. boto3 is imported here only.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from thrifty.providers.base import REPLICA_LIVE_STATES as LIVE_STATES
from thrifty.providers.base import (
    DeploymentStatus,
    DeploySpec,
    Feature,
    ManagedResource,
    PriceModel,
    Replica,
    require,
)
from thrifty.providers.boot import BootConfig, render_user_data
from thrifty.providers.gc import DEPLOYMENT_KEY, MANAGED_KEY

REPLICAS_KEY = "thrifty:replicas"
PRICE_MODEL_KEY = "thrifty:price-model"
FLOOR_KEY = "thrifty:on-demand-floor"
HIBERNATED_KEY = "thrifty:hibernated"
SLOT_KEY = "thrifty:slot"
MARKET_KEY = "thrifty:market"
FALLBACK_KEY = "thrifty:fallback"
RETIRED_KEY = "thrifty:retired"

_CREDENTIAL_CODES = {
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "RequestExpired",
    "OptInRequired",
}
_CAPACITY_CODES = {
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "SpotMaxPriceTooLow",
    "InsufficientHostCapacity",
    "Unsupported",
}
_QUOTA_CODES = {
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "InsufficientFreeAddressesInSubnet",
}


@dataclass(frozen=True)
class AwsTarget:
    """Where and how to launch on AWS (plain config; the ``AwsTargetBlock`` builds it)."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    image_id: str | None = None
    image_parameter: str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    subnet_id: str | None = None
    security_group_ids: tuple[str, ...] = ()
    instance_profile_arn: str | None = None
    spot_fallback_on_demand: bool = True
    boot: BootConfig = field(default_factory=lambda: BootConfig(artifact_store_url="s3://thrifty-artifacts"))


def _tags(mapping: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in mapping.items()]


def _tag_dict(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def _translate(exc: Exception, what: str, region: str) -> ThriftyError:
    """A botocore error as a thrifty error; the message never holds a credential."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CredentialsError(
            f"AWS {what}: no usable credentials", hint="configure an AwsCredentials block or AWS_* keys"
        )
    if not isinstance(exc, ClientError):
        return ProviderError(
            f"AWS {what} in {region} failed: {type(exc).__name__}", hint="check the endpoint"
        )
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    text = f"AWS {what} in {region} refused: {code}: {message}"
    if code == "UnauthorizedOperation":
        action = f"ec2:{exc.operation_name}"
        return CredentialsError(text, hint=f"grant the IAM action {action} to thrifty's role or user")
    if code in _CREDENTIAL_CODES:
        return CredentialsError(text, hint="check the access key, secret and session token of the block")
    if code in _CAPACITY_CODES:
        return CapacityError(text, hint="try another instance type, zone or the plan's next candidate")
    if code in _QUOTA_CODES:
        return QuotaExceededError(text, hint=f"raise the EC2 quota in {region} (Service Quotas console)")
    if code.endswith("NotFound") or code.endswith("NotFoundException"):
        return NotFoundError(text, hint="it may have been deleted outside thrifty")
    return ProviderError(text, hint="see the AWS error code in the message")


class AwsProvider:
    name: ClassVar[str] = "aws"
    unsupported: ClassVar[Mapping[Feature, str]] = {
        Feature.SCALE_TO_ZERO: "EC2 instances do not scale to zero on requests; use hibernate",
    }

    def __init__(self, target: AwsTarget | None = None, *, session: Any = None) -> None:
        import boto3

        self.target = target or AwsTarget()
        self.session = session or boto3.session.Session(region_name=self.target.region)
        self.ec2: Any = self.session.client(
            "ec2", region_name=self.target.region, endpoint_url=self.target.endpoint_url
        )

    # -- vendor boundary ------------------------------------------------------------------

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, boot: BootConfig, dry_run: bool) -> AwsProvider:
        """The provider the CLI builds from its options (credentials: boto3's usual chain)."""
        region = options.get("region") or "us-east-1"
        return cls(AwsTarget(region=region, endpoint_url=options.get("endpoint_url"), boot=boot))

    def dry_run_document(self, spec: DeploySpec) -> Any:
        """What ``thrifty deploy --dry-run`` prints: the launch template data."""
        return self.launch_template_data(spec, self.target.image_id or "RESOLVED_AT_DEPLOY")

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, what, self.target.region) from exc

    def _pages(self, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
        paginator = self.ec2.get_paginator(operation)
        for page in self._call(operation, lambda: list(paginator.paginate(**kwargs))):
            yield from page.get(key, [])

    # -- launch template ------------------------------------------------------------------
    def template_name(self, name: str) -> str:
        return f"thrifty-{name}"

    def _image_id(self) -> str:
        if self.target.image_id:
            return self.target.image_id
        ssm = self.session.client(
            "ssm", region_name=self.target.region, endpoint_url=self.target.endpoint_url
        )
        found = self._call("ssm:GetParameter", ssm.get_parameter, Name=self.target.image_parameter)
        return str(found["Parameter"]["Value"])

    def launch_template_data(self, spec: DeploySpec, image_id: str) -> dict[str, Any]:
        """The template's data: image, type, role, network and user data (no market options)."""
        user_data = render_user_data(spec, self.target.boot, cloud="aws")
        data: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": spec.instance_type,
            "UserData": base64.b64encode(user_data.encode()).decode(),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": _tags(self._owner_tags(spec.name))}],
        }
        if self.target.instance_profile_arn:
            data["IamInstanceProfile"] = {"Arn": self.target.instance_profile_arn}
        if self.target.subnet_id or self.target.security_group_ids:
            nic: dict[str, Any] = {"DeviceIndex": 0, "AssociatePublicIpAddress": True}
            if self.target.subnet_id:
                nic["SubnetId"] = self.target.subnet_id
            if self.target.security_group_ids:
                nic["Groups"] = list(self.target.security_group_ids)
            data["NetworkInterfaces"] = [nic]
        return data

    def _owner_tags(self, name: str) -> dict[str, str]:
        return {MANAGED_KEY: "true", DEPLOYMENT_KEY: name}

    def _intent_tags(self, spec: DeploySpec) -> dict[str, str]:
        return {
            **self._owner_tags(spec.name),
            REPLICAS_KEY: str(spec.replicas),
            PRICE_MODEL_KEY: spec.price_model.value,
            FLOOR_KEY: str(spec.on_demand_floor),
            HIBERNATED_KEY: "false",
            "thrifty:model": spec.model_name,
            "thrifty:variant": str(spec.variant_id),
            "thrifty:sha256": spec.artifact_sha256,
        }

    def _find_template(self, name: str) -> dict[str, Any] | None:
        found = list(
            self._pages(
                "describe_launch_templates",
                "LaunchTemplates",
                Filters=[{"Name": "launch-template-name", "Values": [self.template_name(name)]}],
            )
        )
        return found[0] if found else None

    def _put_template(self, spec: DeploySpec) -> tuple[dict[str, Any], bool]:
        """Create the template, or add a version when the data changed; (template, created)."""
        data = self.launch_template_data(spec, self._image_id())
        existing = self._find_template(spec.name)
        if existing is None:
            created = self._call(
                "create_launch_template",
                self.ec2.create_launch_template,
                LaunchTemplateName=self.template_name(spec.name),
                LaunchTemplateData=data,
                TagSpecifications=[
                    {"ResourceType": "launch-template", "Tags": _tags(self._intent_tags(spec))}
                ],
                ClientToken=_token(spec.name, "template"),
            )
            return created["LaunchTemplate"], True
        self._update_template(existing, spec, data)
        return existing, False

    def _update_template(self, existing: Mapping[str, Any], spec: DeploySpec, data: dict[str, Any]) -> None:
        template_id = existing["LaunchTemplateId"]
        current = self._call(
            "describe_launch_template_versions",
            self.ec2.describe_launch_template_versions,
            LaunchTemplateId=template_id,
            Versions=["$Default"],
        )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        if any(current.get(key) != data[key] for key in ("ImageId", "InstanceType", "UserData")):
            version = self._call(
                "create_launch_template_version",
                self.ec2.create_launch_template_version,
                LaunchTemplateId=template_id,
                LaunchTemplateData=data,
            )["LaunchTemplateVersion"]["VersionNumber"]
            self._call(
                "modify_launch_template",
                self.ec2.modify_launch_template,
                LaunchTemplateId=template_id,
                DefaultVersion=str(version),
            )
        self._set_tags(template_id, self._intent_tags(spec))

    def _set_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        self._call("create_tags", self.ec2.create_tags, Resources=[resource_id], Tags=_tags(tags))

    def _template_tags(self, template_id: str) -> dict[str, str]:
        """The template's current tags (DescribeTags: always fresh, also where a listing caches)."""
        found = self._pages(
            "describe_tags", "Tags", Filters=[{"Name": "resource-id", "Values": [template_id]}]
        )
        return {t["Key"]: t["Value"] for t in found}

    def _intent(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        template = self._find_template(name)
        if template is None:
            raise NotFoundError(
                f"no AWS deployment named {name!r} in {self.target.region}",
                hint="deploy it first (`thrifty deploy … --target aws`)",
            )
        return template, self._template_tags(template["LaunchTemplateId"])

    # -- instances -------------------------------------------------------------------------
    def _instances(self, name: str) -> list[dict[str, Any]]:
        filters = [
            {"Name": f"tag:{DEPLOYMENT_KEY}", "Values": [name]},
            {"Name": f"tag:{MANAGED_KEY}", "Values": ["true"]},
        ]
        found = self._pages("describe_instances", "Reservations", Filters=filters)
        return [instance for reservation in found for instance in reservation["Instances"]]

    def replicas(self, name: str) -> list[Replica]:
        """Every instance of the deployment (live or not), oldest first."""
        return sorted(
            (self._replica(i) for i in self._instances(name)), key=lambda r: (r.launched_at is None, r.id)
        )

    def _replica(self, instance: Mapping[str, Any]) -> Replica:
        tags = _tag_dict(instance)
        market = PriceModel.SPOT if instance.get("InstanceLifecycle") == "spot" else PriceModel.ON_DEMAND
        host = instance.get("PublicIpAddress") or instance.get("PrivateIpAddress")
        launched = instance.get("LaunchTime")
        return Replica(
            id=instance["InstanceId"],
            slot=int(tags.get(SLOT_KEY, "0")),
            market=market,
            state=instance["State"]["Name"],
            fallback=tags.get(FALLBACK_KEY) == "on-demand",
            retired=tags.get(RETIRED_KEY) == "true",
            endpoint_url=f"http://{host}:{self.target.boot.port}" if host else None,
            launched_at=launched.astimezone(UTC) if isinstance(launched, datetime) else None,
        )

    def launch_replica(
        self, name: str, slot: int, market: PriceModel, *, replaces: str = "", allow_fallback: bool = True
    ) -> Replica:
        """Start one instance for ``slot``; a spot launch refused for capacity falls back to on-demand."""
        template, _ = self._intent(name)
        version = str(self._default_version(template["LaunchTemplateId"]))
        try:
            return self._run(name, template, slot, market, _token(name, version, str(slot), market, replaces))
        except CapacityError:
            if market is not PriceModel.SPOT or not (allow_fallback and self.target.spot_fallback_on_demand):
                raise
        token = _token(name, version, str(slot), "fallback", replaces)
        return self._run(name, template, slot, PriceModel.ON_DEMAND, token, fallback=True)

    def _run(
        self,
        name: str,
        template: Mapping[str, Any],
        slot: int,
        market: PriceModel,
        token: str,
        *,
        fallback: bool = False,
    ) -> Replica:
        tags = {**self._owner_tags(name), SLOT_KEY: str(slot), MARKET_KEY: market.value}
        if fallback:
            tags[FALLBACK_KEY] = "on-demand"
        kwargs: dict[str, Any] = {
            "LaunchTemplate": {"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Default"},
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": token,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": _tags(tags)},
                {"ResourceType": "volume", "Tags": _tags(self._owner_tags(name))},
            ],
        }
        if market is PriceModel.SPOT:
            kwargs["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        result = self._call("run_instances", self.ec2.run_instances, **kwargs)
        return self._replica(result["Instances"][0])

    def retire_replica(self, name: str, replica_id: str) -> None:
        """Mark the instance retired (so it is not counted as lost) and terminate it; idempotent."""
        try:
            self._set_tags(replica_id, {RETIRED_KEY: "true"})
            self._call("terminate_instances", self.ec2.terminate_instances, InstanceIds=[replica_id])
        except NotFoundError:
            return

    # -- reconcile ---------------------------------------------------------------------------
    def desired_markets(self, tags: Mapping[str, str]) -> list[PriceModel]:
        """The market each slot should run on: the floor on-demand, the rest per the price model."""
        if tags.get(HIBERNATED_KEY) == "true":
            return []
        replicas = int(tags.get(REPLICAS_KEY, "0"))
        floor = min(int(tags.get(FLOOR_KEY, "0")), replicas)
        wanted = PriceModel(tags.get(PRICE_MODEL_KEY, PriceModel.ON_DEMAND.value))
        return [PriceModel.ON_DEMAND] * floor + [wanted] * (replicas - floor)

    def desired_markets_of(self, name: str) -> list[PriceModel]:
        return self.desired_markets(self._intent(name)[1])

    def reconcile(self, name: str) -> list[Replica]:
        """Launch what is missing and retire what is extra; returns the replicas launched."""
        _, tags = self._intent(name)
        markets = self.desired_markets(tags)
        everything = self.replicas(name)
        live = [r for r in everything if r.state in LIVE_STATES and not r.retired]
        by_slot = {r.slot: r for r in live}
        for extra in live:
            if extra.slot >= len(markets) or by_slot[extra.slot].id != extra.id:
                self.retire_replica(name, extra.id)
        # the count of earlier instances in a slot makes a replacement's ClientToken new, while a
        # retry of the same launch (its instance live, not counted) reuses the token
        gone = [r.slot for r in everything if r not in live]
        return [
            self.launch_replica(name, slot, market, replaces=f"gen{gone.count(slot)}")
            for slot, market in enumerate(markets)
            if slot not in by_slot
        ]

    def roll_stale(self, name: str) -> list[Replica]:
        """Replace live instances launched from an older template version, or on a market the spec no
        longer wants (an on-demand fallback in a spot slot is left to the rebalance): new first, then
        the old one is retired. Returns the replicas launched."""
        template, tags = self._intent(name)
        version = str(self._default_version(template["LaunchTemplateId"]))
        markets = self.desired_markets(tags)
        launched = []
        for instance in self._instances(name):
            replica = self._replica(instance)
            if not replica.live or replica.slot >= len(markets):
                continue
            old_version = _tag_dict(instance).get("aws:ec2launchtemplate:version", version)
            wrong_market = replica.market is not markets[replica.slot] and not replica.fallback
            if old_version != version or wrong_market:
                launched.append(
                    self.launch_replica(name, replica.slot, markets[replica.slot], replaces=replica.id)
                )
                self.retire_replica(name, replica.id)
        return launched

    def _default_version(self, template_id: str) -> int:
        found = self._call(
            "describe_launch_template_versions",
            self.ec2.describe_launch_template_versions,
            LaunchTemplateId=template_id,
            Versions=["$Default"],
        )
        return int(found["LaunchTemplateVersions"][0]["VersionNumber"])

    # -- Provider protocol -------------------------------------------------------------------
    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        require(self, spec)
        if spec.price_model is PriceModel.SERVERLESS:
            raise ConfigError(
                f"price model {spec.price_model.value!r} is not an EC2 offer",
                hint="use on_demand or spot",
            )
        template, created = self._put_template(spec)
        launched: list[Replica] = []
        try:
            launched = self.reconcile(spec.name)
            launched += self.roll_stale(spec.name)
        except ThriftyError:
            self._rollback(spec.name, template if created else None, launched)
            raise
        return self.status(spec.name)

    def _rollback(self, name: str, template: Mapping[str, Any] | None, launched: list[Replica]) -> None:
        """Remove what a failed deploy created: its instances (all, when the template is new)."""
        doomed = [r.id for r in self.replicas(name) if r.state in LIVE_STATES] if template else []
        for replica_id in {*doomed, *(r.id for r in launched)}:
            self.retire_replica(name, replica_id)
        if template is not None:
            self._delete_template(template["LaunchTemplateId"])

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        if replicas < 0:
            raise ConfigError(f"replicas={replicas} is negative", hint="pass 0 or more")
        template, _ = self._intent(name)
        self._set_tags(template["LaunchTemplateId"], {REPLICAS_KEY: str(replicas)})
        self.reconcile(name)
        return self.status(name)

    def hibernate(self, name: str) -> DeploymentStatus:
        template, _ = self._intent(name)
        self._set_tags(template["LaunchTemplateId"], {HIBERNATED_KEY: "true"})
        self.reconcile(name)
        return self.status(name)

    def wake(self, name: str) -> DeploymentStatus:
        template, _ = self._intent(name)
        self._set_tags(template["LaunchTemplateId"], {HIBERNATED_KEY: "false"})
        self.reconcile(name)
        return self.status(name)

    def status(self, name: str) -> DeploymentStatus:
        template = self._find_template(name)
        replicas = [r for r in self.replicas(name) if r.state in LIVE_STATES and not r.retired]
        if template is None:
            state = "deleted" if not replicas else "degraded"
            return DeploymentStatus(name, self.name, state, 0, len(replicas))
        tags = self._template_tags(template["LaunchTemplateId"])
        desired = len(self.desired_markets(tags))
        ready = sum(r.state == "running" for r in replicas)
        endpoints = [r.endpoint_url for r in replicas if r.endpoint_url and r.state == "running"]
        return DeploymentStatus(
            name=name,
            provider=self.name,
            state=_state(tags, desired, ready, len(replicas)),
            replicas_desired=desired,
            replicas_ready=ready,
            endpoint_url=endpoints[0] if endpoints else None,
            resources=tuple(self._resource_of(r, name) for r in replicas),
            details={
                "endpoints": endpoints,
                "markets": {r.id: r.market.value for r in replicas},
                "fallbacks": [r.id for r in replicas if r.fallback],
                "launch_template_id": template["LaunchTemplateId"],
            },
        )

    def delete(self, name: str) -> None:
        for replica in self.replicas(name):
            if replica.state not in ("terminated", "shutting-down"):
                self.retire_replica(name, replica.id)
        template = self._find_template(name)
        if template is not None:
            self._delete_template(template["LaunchTemplateId"])

    def _delete_template(self, template_id: str) -> None:
        try:
            self._call(
                "delete_launch_template", self.ec2.delete_launch_template, LaunchTemplateId=template_id
            )
        except NotFoundError:
            return

    def list_managed(self) -> list[ManagedResource]:
        owned = [{"Name": f"tag:{MANAGED_KEY}", "Values": ["true"]}]
        states = {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        resources = [
            self._resource_of(self._replica(i), _tag_dict(i).get(DEPLOYMENT_KEY, ""))
            for reservation in self._pages("describe_instances", "Reservations", Filters=[*owned, states])
            for i in reservation["Instances"]
        ]
        for template in self._pages("describe_launch_templates", "LaunchTemplates", Filters=owned):
            resources.append(
                ManagedResource(
                    provider=self.name,
                    kind="launch-template",
                    id=template["LaunchTemplateId"],
                    region=self.target.region,
                    deployment_name=_tag_dict(template).get(DEPLOYMENT_KEY, ""),
                    created_at=_utc(template.get("CreateTime")),
                )
            )
        return resources

    def _resource_of(self, replica: Replica, name: str) -> ManagedResource:
        return ManagedResource(
            provider=self.name,
            kind="instance",
            id=replica.id,
            region=self.target.region,
            deployment_name=name,
            created_at=replica.launched_at,
            details={"market": replica.market.value, "state": replica.state, "fallback": replica.fallback},
        )

    def delete_resource(self, resource: ManagedResource) -> None:
        """Delete one resource found by ``list_managed`` (the orphan sweep's verb)."""
        if resource.kind == "instance":
            self.retire_replica(resource.deployment_name, resource.id)
        elif resource.kind == "launch-template":
            self._delete_template(resource.id)
        else:
            raise ConfigError(
                f"unknown AWS resource kind {resource.kind!r}", hint="instance or launch-template"
            )


def _state(tags: Mapping[str, str], desired: int, ready: int, live: int) -> str:
    if tags.get(HIBERNATED_KEY) == "true":
        return "hibernated"
    if ready >= desired:
        return "running"
    if live > ready:
        return "pending"
    return "degraded"


def _utc(value: Any) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _token(*parts: str) -> str:
    """A ClientToken (≤ 64 ASCII characters) that is the same for the same launch intent."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:64]
