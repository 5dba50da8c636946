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
- Network rule: a security group ``thrifty-<name>`` per deployment (owner tags, creation time in
  ``thrifty:created-at``) lets in only the serving port from the source range of
  ``providers.network`` (never 0.0.0.0/0 by default). It is created before the template, rides in
  it beside the block's own groups, and is deleted after the instances on delete, rollback and gc.
- Regions: the spec's region (or availability zone, then also the placement) is where the
  deployment lives, whatever the block's ``region`` says; ``in_region`` gives the provider of
  another region (AMI id, subnet and groups of the block are regional, so there only the SSM image
  parameter and the default VPC are used). Calls by name find the deployment's launch template in
  the block's region, the regions this provider deployed to, then the block's ``regions`` (the
  regions plans may choose; ``gc`` sweeps the same set).
- HTTPS: a spec that pins a certificate carries its secret bundle (TLS key, certificate, token
  digest); it goes to Secrets Manager as ``thrifty-<name>`` (tagged like the rest, deleted with the
  deployment) and the user data names only that secret; the instance's container reads it with the
  instance profile (which needs ``secretsmanager:GetSecretValue`` on it) and serves ``https://``.

Vendor errors become thrifty errors in ``_translate`` (the one boundary): e.g. an
``UnauthorizedOperation`` names the IAM action to grant. boto3 is imported here only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

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
from thrifty.providers.boot import BootConfig, render_user_data, secret_name
from thrifty.providers.gc import DEPLOYMENT_KEY, MANAGED_KEY
from thrifty.providers.network import (
    CREATED_KEY,
    now_tag,
    parse_created,
    rule_name,
    source_ranges,
    split_families,
)

P = ParamSpec("P")
R = TypeVar("R")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+")

REPLICAS_KEY = "thrifty:replicas"
PRICE_MODEL_KEY = "thrifty:price-model"
FLOOR_KEY = "thrifty:on-demand-floor"
HIBERNATED_KEY = "thrifty:hibernated"
SLOT_KEY = "thrifty:slot"
MARKET_KEY = "thrifty:market"
FALLBACK_KEY = "thrifty:fallback"
RETIRED_KEY = "thrifty:retired"
ZONE_KEY = "thrifty:zone"
TLS_KEY = "thrifty:tls"

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
    #: where calls by name and ``list_managed`` look besides ``region`` and the regions this provider
    #: deployed to: the regions plans may choose (every region would cost a call each)
    regions: tuple[str, ...] = ()


def region_and_zone(where: str) -> tuple[str, str | None]:
    """``us-east-1`` → (us-east-1, None); ``us-east-1a`` → (us-east-1, us-east-1a)."""
    if _REGION.fullmatch(where):
        return where, None
    if where[-1:].isalpha() and _REGION.fullmatch(where[:-1]):
        return where[:-1], where
    raise ConfigError(
        f"{where!r} is not an AWS region or availability zone",
        hint="use e.g. us-east-1 or us-east-1a (plan again with the aws provider)",
    )


def _at_home(
    method: Callable[Concatenate[AwsProvider, str, P], R],
) -> Callable[Concatenate[AwsProvider, str, P], R]:
    """Run a call by deployment name on the provider of the region that holds the deployment."""

    @functools.wraps(method)
    def wrapper(self: AwsProvider, name: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(self.home_of(name), name, *args, **kwargs)

    return wrapper


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
    #: where a deployment's TLS key and token digest go (``DeploySpec.secret_bundle``)
    secret_store: ClassVar[str] = "Secrets Manager"
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
        #: the providers of every region used so far, and where each deployment was found (shared)
        self._regional: dict[str, AwsProvider] = {self.target.region: self}
        self._where: dict[str, str] = {}

    # -- regions ---------------------------------------------------------------------------
    def in_region(self, region: str) -> AwsProvider:
        """The provider of ``region`` (this one for its own); the block's regional ids stay home."""
        if region not in self._regional:
            target = replace(self.target, region=region, image_id=None, subnet_id=None, security_group_ids=())
            other = AwsProvider(target, session=self.session)
            other._regional, other._where = self._regional, self._where
            self._regional[region] = other
        return self._regional[region]

    def regions(self) -> list[str]:
        """Where calls by name look: the block's region, regions used so far, then ``regions``."""
        return list(dict.fromkeys([self.target.region, *self._regional, *self.target.regions]))

    def home_of(self, name: str) -> AwsProvider:
        """The provider of the region whose launch template is deployment ``name``'s (else this one)."""
        if name in self._where:
            return self.in_region(self._where[name])
        for region in self.regions():
            if self.in_region(region)._find_template(name) is not None:
                self._where[name] = region
                return self.in_region(region)
        return self

    # -- vendor boundary ------------------------------------------------------------------

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, boot: BootConfig, dry_run: bool) -> AwsProvider:
        """The provider the CLI builds from its options (credentials: boto3's usual chain)."""
        region = options.get("region") or "us-east-1"
        return cls(AwsTarget(region=region, endpoint_url=options.get("endpoint_url"), boot=boot))

    def dry_run_document(self, spec: DeploySpec) -> Any:
        """What ``thrifty deploy --dry-run`` prints: the launch template data."""
        region, _ = region_and_zone(spec.region)
        here = self.in_region(region)
        return here.launch_template_data(
            spec, here.target.image_id or "RESOLVED_AT_DEPLOY", "CREATED_AT_DEPLOY"
        )

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

    def launch_template_data(self, spec: DeploySpec, image_id: str, group_id: str) -> dict[str, Any]:
        """The template's data: image, type, role, network and user data (no market options)."""
        secret = f"aws-secretsmanager:{secret_name(spec.name)}" if spec.serving.get("tls_cert_sha256") else ""
        user_data = render_user_data(spec, self.target.boot, cloud="aws", secret=secret)
        data: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": spec.instance_type,
            "UserData": base64.b64encode(user_data.encode()).decode(),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": _tags(self._owner_tags(spec.name))}],
        }
        if self.target.instance_profile_arn:
            data["IamInstanceProfile"] = {"Arn": self.target.instance_profile_arn}
        groups = [group_id, *self.target.security_group_ids]
        if self.target.subnet_id:
            nic = {"DeviceIndex": 0, "AssociatePublicIpAddress": True, "SubnetId": self.target.subnet_id}
            data["NetworkInterfaces"] = [{**nic, "Groups": groups}]
        else:
            data["SecurityGroupIds"] = groups  # the default VPC's subnets give a public IP
        zone = region_and_zone(spec.region)[1]
        if zone:
            data["Placement"] = {"AvailabilityZone": zone}
        return data

    # -- network rule ------------------------------------------------------------------------
    def _vpc_id(self) -> str:
        if self.target.subnet_id:
            found = self._call(
                "describe_subnets", self.ec2.describe_subnets, SubnetIds=[self.target.subnet_id]
            )
            return str(found["Subnets"][0]["VpcId"])
        default = [{"Name": "isDefault", "Values": ["true"]}]
        vpcs = self._call("describe_vpcs", self.ec2.describe_vpcs, Filters=default)["Vpcs"]
        if not vpcs:
            raise ConfigError(
                f"no default VPC in {self.target.region} for the deployment's security group",
                hint="set subnet_id on the target block to a subnet of the VPC to launch in",
            )
        return str(vpcs[0]["VpcId"])

    def _find_group(self, name: str) -> dict[str, Any] | None:
        filters = [
            {"Name": "group-name", "Values": [rule_name(name)]},
            {"Name": f"tag:{MANAGED_KEY}", "Values": ["true"]},
        ]
        found = self._call("describe_security_groups", self.ec2.describe_security_groups, Filters=filters)
        groups: list[dict[str, Any]] = found["SecurityGroups"]
        return groups[0] if groups else None

    def _put_group(self, spec: DeploySpec, cidrs: tuple[str, ...]) -> tuple[str, bool]:
        """The deployment's security group, its ingress set to the serving port from ``cidrs``."""
        group = self._find_group(spec.name)
        if group is None:
            port = self.target.boot.port
            group_id = self._call(
                "create_security_group",
                self.ec2.create_security_group,
                GroupName=rule_name(spec.name),
                Description=f"thrifty deployment {spec.name}: tcp {port} from {', '.join(cidrs)}",
                VpcId=self._vpc_id(),
                TagSpecifications=[
                    {
                        "ResourceType": "security-group",
                        "Tags": _tags({**self._owner_tags(spec.name), CREATED_KEY: now_tag()}),
                    }
                ],
            )["GroupId"]
            self._set_ingress(group_id, [], cidrs)
            return str(group_id), True
        self._set_ingress(group["GroupId"], group.get("IpPermissions", []), cidrs)
        return str(group["GroupId"]), False

    def _set_ingress(self, group_id: str, current: list[dict[str, Any]], cidrs: tuple[str, ...]) -> None:
        port = self.target.boot.port
        have = {
            (p.get("IpProtocol"), p.get("FromPort"), p.get("ToPort"), r.get("CidrIp") or r.get("CidrIpv6"))
            for p in current
            for r in [*p.get("IpRanges", []), *p.get("Ipv6Ranges", [])]
        }
        if have == {("tcp", port, port, c) for c in cidrs}:
            return
        if current:
            self._call("revoke_security_group_ingress", self.ec2.revoke_security_group_ingress,
                       GroupId=group_id, IpPermissions=current)  # fmt: skip
        v4, v6 = split_families(cidrs)
        rule = {
            "IpProtocol": "tcp",
            "FromPort": port,
            "ToPort": port,
            "IpRanges": [{"CidrIp": c, "Description": "thrifty serving port"} for c in v4],
            "Ipv6Ranges": [{"CidrIpv6": c, "Description": "thrifty serving port"} for c in v6],
        }
        self._call("authorize_security_group_ingress", self.ec2.authorize_security_group_ingress,
                   GroupId=group_id, IpPermissions=[rule])  # fmt: skip

    def _delete_group(self, group_id: str) -> None:
        """Delete a security group; one still used by a shutting-down instance is left to ``gc``."""
        from botocore.exceptions import ClientError

        try:
            self.ec2.delete_security_group(GroupId=group_id)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "DependencyViolation" or code.endswith("NotFound"):
                return
            raise _translate(exc, "delete_security_group", self.target.region) from exc

    def _await_terminated(self, instance_ids: list[str]) -> None:
        """Wait (at most ~5 min) until the instances are gone, so their security group can go too."""
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        if not instance_ids:
            return
        waiter = self.ec2.get_waiter("instance_terminated")
        try:
            waiter.wait(InstanceIds=instance_ids, WaiterConfig={"Delay": 5, "MaxAttempts": 60})
        except (WaiterError, ClientError, BotoCoreError):
            return  # the group stays; `thrifty gc` deletes it once nothing uses it

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
            ZONE_KEY: region_and_zone(spec.region)[1] or "",
            TLS_KEY: "true" if spec.serving.get("tls_cert_sha256") else "false",
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

    def _put_template(self, spec: DeploySpec, group_id: str) -> tuple[dict[str, Any], bool]:
        """Create the template, or add a version when the data changed; (template, created)."""
        data = self.launch_template_data(spec, self._image_id(), group_id)
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
        keys = ("ImageId", "InstanceType", "UserData", "SecurityGroupIds", "Placement")
        if any(current.get(key) != data.get(key) for key in keys):
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

    @_at_home
    def replicas(self, name: str) -> list[Replica]:
        """Every instance of the deployment (live or not), oldest first."""
        return sorted(
            (self._replica(i) for i in self._instances(name)), key=lambda r: (r.launched_at is None, r.id)
        )

    def _replica(self, instance: Mapping[str, Any]) -> Replica:
        tags = _tag_dict(instance)
        market = PriceModel.SPOT if instance.get("InstanceLifecycle") == "spot" else PriceModel.ON_DEMAND
        host = instance.get("PublicIpAddress") or instance.get("PrivateIpAddress")
        scheme = "https" if tags.get(TLS_KEY) == "true" else "http"
        launched = instance.get("LaunchTime")
        return Replica(
            id=instance["InstanceId"],
            slot=int(tags.get(SLOT_KEY, "0")),
            market=market,
            state=instance["State"]["Name"],
            fallback=tags.get(FALLBACK_KEY) == "on-demand",
            retired=tags.get(RETIRED_KEY) == "true",
            endpoint_url=f"{scheme}://{host}:{self.target.boot.port}" if host else None,
            launched_at=launched.astimezone(UTC) if isinstance(launched, datetime) else None,
        )

    @_at_home
    def launch_replica(
        self, name: str, slot: int, market: PriceModel, *, replaces: str = "", allow_fallback: bool = True
    ) -> Replica:
        """Start one instance for ``slot``; a spot launch refused for capacity falls back to on-demand."""
        template, tags = self._intent(name)
        version = str(self._default_version(template["LaunchTemplateId"]))
        template = {**template, ZONE_KEY: tags.get(ZONE_KEY, "")}
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
        tags[TLS_KEY] = _tag_dict(template).get(TLS_KEY, "false")
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
        if template.get(ZONE_KEY):  # also in the template; said again since not every API reads it there
            kwargs["Placement"] = {"AvailabilityZone": template[ZONE_KEY]}
        if market is PriceModel.SPOT:
            kwargs["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
            }
        result = self._call("run_instances", self.ec2.run_instances, **kwargs)
        return self._replica(result["Instances"][0])

    @_at_home
    def retire_replica(self, name: str, replica_id: str) -> None:
        """Mark the instance retired (so it is not counted as lost) and terminate it; idempotent."""
        self._retire(replica_id)

    def _retire(self, replica_id: str) -> None:
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

    @_at_home
    def desired_markets_of(self, name: str) -> list[PriceModel]:
        return self.desired_markets(self._intent(name)[1])

    @_at_home
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

    @_at_home
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
        cidrs = source_ranges(spec, self.target.boot.allowed_cidrs)  # refused before anything exists
        region, _ = region_and_zone(spec.region)
        self._where[spec.name] = region
        return self.in_region(region)._deploy_here(spec, cidrs)

    def _deploy_here(self, spec: DeploySpec, cidrs: tuple[str, ...]) -> DeploymentStatus:
        earlier = self._earlier(spec.name)
        kept = {r.id for r in self.replicas(spec.name) if r.live} if earlier else set()
        group_id, group_created = self._put_group(spec, cidrs)
        template: dict[str, Any] | None = None
        secret_created = False
        try:
            secret_created = self._put_secret(spec)
            template, created = self._put_template(spec, group_id)
            self.reconcile(spec.name)
            self.roll_stale(spec.name)
        except ThriftyError:
            new = template is not None and created
            # every live instance the earlier deployment did not have: also those a call that
            # failed half-way launched before it raised
            launched = [r for r in self.replicas(spec.name) if r.live and r.id not in kept]
            self._rollback(
                spec.name, template if new else None, launched, group_id if group_created else None
            )
            if earlier is not None:
                self._restore(earlier)
            if secret_created:
                self._delete_secret(spec.name)
            raise
        return self.status(spec.name)

    # -- the deployment's secret (TLS key, certificate, token digest) in Secrets Manager ---------
    def _secrets(self) -> Any:
        endpoint = self.target.boot.secrets_endpoint_url or self.target.endpoint_url
        return self.session.client("secretsmanager", region_name=self.target.region, endpoint_url=endpoint)

    def _put_secret(self, spec: DeploySpec) -> bool:
        """Write the spec's bundle to ``thrifty-NAME``; True when this call created the secret."""
        if spec.secret_bundle is None:
            return False
        client, name = self._secrets(), secret_name(spec.name)
        value = spec.secret_bundle.get_secret_value()
        try:
            self._call(
                "secretsmanager:PutSecretValue", client.put_secret_value, SecretId=name, SecretString=value
            )
            return False
        except NotFoundError:
            tags = _tags(self._owner_tags(spec.name))
            self._call(
                "secretsmanager:CreateSecret", client.create_secret, Name=name, SecretString=value, Tags=tags
            )
            return True

    def _delete_secret(self, name: str, secret_id: str = "") -> None:
        """Delete deployment ``name``'s secret (or the secret ``secret_id``); absent: nothing to do."""
        client = self._secrets()
        try:
            self._call(
                "secretsmanager:DeleteSecret",
                client.delete_secret,
                SecretId=secret_id or secret_name(name),
                ForceDeleteWithoutRecovery=True,
            )
        except NotFoundError:
            return

    def _managed_secrets(self) -> list[ManagedResource]:
        """thrifty's Secrets Manager secrets in this region (tag ``thrifty:managed=true``)."""
        paginator = self._secrets().get_paginator("list_secrets")
        filters = [{"Key": "tag-key", "Values": [MANAGED_KEY]}]
        pages = self._call("secretsmanager:ListSecrets", lambda: list(paginator.paginate(Filters=filters)))
        return [
            ManagedResource(
                provider=self.name,
                kind="secret",
                id=secret["Name"],
                region=self.target.region,
                deployment_name=_tag_dict(secret).get(DEPLOYMENT_KEY, ""),
                created_at=_utc(secret.get("CreatedDate")),
            )
            for page in pages
            for secret in page.get("SecretList", [])
            if _tag_dict(secret).get(MANAGED_KEY) == "true"
        ]

    def _earlier(self, name: str) -> tuple[str, str, dict[str, str], dict[str, Any] | None] | None:
        """What a redeploy may change of an existing deployment: (template id, default version, its
        intent tags, its security group); None for a new deployment."""
        template = self._find_template(name)
        if template is None:
            return None
        template_id = template["LaunchTemplateId"]
        version = str(self._default_version(template_id))
        return template_id, version, self._template_tags(template_id), self._find_group(name)

    def _restore(self, earlier: tuple[str, str, dict[str, str], dict[str, Any] | None]) -> None:
        """Put a failed redeploy's changes back: the earlier deployment keeps running as it was."""
        template_id, version, tags, group = earlier
        self._call("modify_launch_template", self.ec2.modify_launch_template,
                   LaunchTemplateId=template_id, DefaultVersion=version)  # fmt: skip
        self._set_tags(template_id, tags)
        now = self._find_group(tags.get(DEPLOYMENT_KEY, ""))
        if group is not None and now is not None and now.get("IpPermissions") != group.get("IpPermissions"):
            cidrs = tuple(
                str(r.get("CidrIp") or r.get("CidrIpv6"))
                for p in group.get("IpPermissions", [])
                for r in [*p.get("IpRanges", []), *p.get("Ipv6Ranges", [])]
            )
            self._set_ingress(now["GroupId"], now.get("IpPermissions", []), cidrs)

    def _rollback(
        self, name: str, template: Mapping[str, Any] | None, launched: list[Replica], group_id: str | None
    ) -> None:
        """Remove what a failed deploy created: its instances (all, when the template is new), the
        template and the security group it made."""
        doomed = [r.id for r in self.replicas(name) if r.state in LIVE_STATES] if template else []
        gone = {*doomed, *(r.id for r in launched)}
        for replica_id in gone:
            self.retire_replica(name, replica_id)
        if template is not None:
            self._delete_template(template["LaunchTemplateId"])
        if group_id is not None:
            self._await_terminated(sorted(gone))
            self._delete_group(group_id)

    @_at_home
    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        if replicas < 0:
            raise ConfigError(f"replicas={replicas} is negative", hint="pass 0 or more")
        template, _ = self._intent(name)
        self._set_tags(template["LaunchTemplateId"], {REPLICAS_KEY: str(replicas)})
        self.reconcile(name)
        return self.status(name)

    @_at_home
    def hibernate(self, name: str) -> DeploymentStatus:
        template, _ = self._intent(name)
        self._set_tags(template["LaunchTemplateId"], {HIBERNATED_KEY: "true"})
        self.reconcile(name)
        return self.status(name)

    @_at_home
    def wake(self, name: str) -> DeploymentStatus:
        template, _ = self._intent(name)
        self._set_tags(template["LaunchTemplateId"], {HIBERNATED_KEY: "false"})
        self.reconcile(name)
        return self.status(name)

    @_at_home
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

    @_at_home
    def delete(self, name: str) -> None:
        doomed = [r.id for r in self.replicas(name) if r.state != "terminated"]
        for replica_id in doomed:
            self.retire_replica(name, replica_id)
        template = self._find_template(name)
        if template is not None:
            self._delete_template(template["LaunchTemplateId"])
        group = self._find_group(name)
        if group is not None:
            self._await_terminated(doomed)
            self._delete_group(group["GroupId"])
        self._delete_secret(name)

    def _delete_template(self, template_id: str) -> None:
        try:
            self._call(
                "delete_launch_template", self.ec2.delete_launch_template, LaunchTemplateId=template_id
            )
        except NotFoundError:
            return

    def list_managed(self) -> list[ManagedResource]:
        """Everything thrifty tagged, in every region calls by name look in (see ``regions``)."""
        return [res for region in self.regions() for res in self.in_region(region)._managed_here()]

    def _managed_here(self) -> list[ManagedResource]:
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
        return resources + self._managed_groups(owned) + self._managed_secrets()

    def _managed_groups(self, owned: list[dict[str, Any]]) -> list[ManagedResource]:
        found = self._call("describe_security_groups", self.ec2.describe_security_groups, Filters=owned)
        return [
            ManagedResource(
                provider=self.name,
                kind="security-group",
                id=group["GroupId"],
                region=self.target.region,
                deployment_name=_tag_dict(group).get(DEPLOYMENT_KEY, ""),
                created_at=parse_created(_tag_dict(group).get(CREATED_KEY)),
                details={"name": group.get("GroupName", ""), "vpc_id": group.get("VpcId", "")},
            )
            for group in found["SecurityGroups"]
        ]

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
        """Delete one resource found by ``list_managed`` (the orphan sweep's verb), in its region."""
        here = self.in_region(resource.region)
        if resource.kind == "instance":
            here._retire(resource.id)
        elif resource.kind == "launch-template":
            here._delete_template(resource.id)
        elif resource.kind == "security-group":
            here._delete_group(resource.id)
        elif resource.kind == "secret":
            here._delete_secret(resource.deployment_name, secret_id=resource.id)
        else:
            raise ConfigError(
                f"unknown AWS resource kind {resource.kind!r}",
                hint="instance, launch-template, security-group or secret",
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
