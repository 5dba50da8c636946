"""Deploy-target blocks: where a plan runs, and with which credentials.

Each block holds plain configuration plus a credentials block and turns into a provider with
``build_provider()`` (the library never sees a block). Save one per account/cluster, e.g.

    AwsDeployTarget(credentials=AwsCredentials(...), region="us-east-1").save("prod")

and pass ``"thrifty-aws-target/prod"`` to the flows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field

from blocks.credentials import (
    AwsCredentials,
    AzureComputeCredentials,
    GcpCredentials,
    KubernetesClusterConfig,
)

#: where VMs fetch variants unless their block says otherwise (or names its own cloud's store)
DEFAULT_STORE_URL = "s3://thrifty-artifacts"


class DeployTargetBlock(Block, ABC):
    """A block that configures one target (abstract: not a block type of its own).

    Each subclass sets ``_block_type_slug`` to its target descriptor's ``block_slug`` and builds
    the target's provider; ``TARGET_BLOCKS`` finds every subclass, so a new target's block class
    is its only edit here.
    """

    @abstractmethod
    def build_provider(self) -> Any:
        """The provider of the target this block configures."""


class _Boot(DeployTargetBlock, ABC):
    """Fields every VM target shares: the artifact store the VM pulls from (abstract: not a block type)."""

    artifact_store_url: str = Field(
        default=DEFAULT_STORE_URL,
        description="Where VMs pull variants from (s3://bucket/prefix, gs://bucket/prefix or "
        "az://account/container/prefix). GCP and Azure targets use their own cloud's store instead "
        "when its field below is set and this one is left as it is.",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint override for the VMs.")
    store_endpoint_url: str | None = Field(
        default=None, description="GCS / Azure Blob endpoint override for the VMs (a test double only)."
    )
    port: int = Field(default=8080, description="Port of the inference server on the VM.")
    image: str = Field(
        default="",
        description="The serving-runtime image by digest in this cloud's registry "
        "(`thrifty image build --push REGISTRY` prints it).",
    )
    insecure_registry: bool = Field(
        default=False, description="Pull without TLS (a local test registry only)."
    )
    allowed_cidrs: list[str] = Field(
        default_factory=list,
        description="Who may reach the serving port (each deployment's security group / firewall rule / "
        "NSG); empty: THRIFTY_CONTROL_PLANE_CIDRS, else deploy refuses. Never 0.0.0.0/0 unless written here.",
    )
    secrets_endpoint_url: str | None = Field(
        default=None, description="Secret store endpoint override for the VMs (default: the cloud's own)."
    )
    front_door_url: str | None = Field(
        default=None,
        description="The front door's URL as the VMs reach it (never 127.0.0.1): where a spot VM's "
        "watcher posts its interruption notice; empty: THRIFTY_FRONT_DOOR_URL, else the log only.",
    )

    def _own_store(self) -> str | None:
        """This cloud's own artifact store, when the block configures one (GCP, Azure)."""
        return None

    def _store_url(self) -> str:
        """``artifact_store_url`` as set; left at its default, the cloud's own store if configured.
        (By value, not ``model_fields_set``: a block loaded from the server has every field set.)"""
        own = self._own_store()
        return own if own and self.artifact_store_url == DEFAULT_STORE_URL else self.artifact_store_url

    def _boot(self) -> Any:
        from thrifty.providers.boot import BootConfig, front_door_pin, vm_front_door_url
        from thrifty.settings import get_settings

        settings = get_settings()
        if self.front_door_url:
            front_door = vm_front_door_url(self.front_door_url, source="the target block's front_door_url")
        else:
            front_door = vm_front_door_url(settings.front_door_url)
        return BootConfig(
            artifact_store_url=self._store_url(),
            s3_endpoint_url=self.s3_endpoint_url,
            store_endpoint_url=self.store_endpoint_url,
            port=self.port,
            image=self.image,
            insecure_registry=self.insecure_registry,
            allowed_cidrs=tuple(self.allowed_cidrs),
            secrets_endpoint_url=self.secrets_endpoint_url,
            front_door_url=front_door,
            front_door_sha256=front_door_pin(front_door, settings.front_door_sha256, settings.home),
        )


class AwsDeployTarget(_Boot):
    _block_type_name = "Thrifty AWS Target"
    _block_type_slug = "thrifty-aws-target"
    _description = "EC2 launch settings for thrifty deployments (spot and on-demand)."

    credentials: AwsCredentials = Field(default_factory=AwsCredentials, description="AWS credentials.")
    region: str = Field(
        default="us-east-1", description="Home region; a plan's region (or zone) is where instances start."
    )
    regions: list[str] = Field(
        default_factory=list,
        description="Other regions plans may choose: where status/delete by name and `gc` also look.",
    )
    image_id: str | None = Field(default=None, description="AMI id; empty: the latest Amazon Linux 2023.")
    subnet_id: str | None = Field(default=None, description="Subnet for the instances.")
    security_group_ids: list[str] = Field(default_factory=list, description="Security groups.")
    instance_profile_arn: str | None = Field(default=None, description="Instance profile (S3 read).")
    spot_fallback_on_demand: bool = Field(default=True, description="Launch on-demand when spot is out.")

    def build_provider(self) -> Any:
        from thrifty.providers.aws import AwsProvider, AwsTarget

        target = AwsTarget(
            region=self.region,
            endpoint_url=self.credentials.endpoint_url,
            image_id=self.image_id,
            subnet_id=self.subnet_id,
            security_group_ids=tuple(self.security_group_ids),
            instance_profile_arn=self.instance_profile_arn,
            spot_fallback_on_demand=self.spot_fallback_on_demand,
            boot=self._boot(),
            regions=tuple(self.regions),
        )
        return AwsProvider(target, session=self.credentials.get_boto3_session())


class GcpDeployTarget(_Boot):
    _block_type_name = "Thrifty GCP Target"
    _block_type_slug = "thrifty-gcp-target"
    _description = "Compute Engine settings for thrifty deployments (SPOT and STANDARD VMs)."

    credentials: GcpCredentials = Field(default_factory=GcpCredentials, description="GCP credentials.")
    zone_suffix: str = Field(default="a", description="Zone used when a plan names only a region.")
    network: str = Field(default="global/networks/default", description="VPC network.")
    image: str = Field(
        default="projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64",
        description="Boot image.",
    )
    service_account_email: str | None = Field(
        default=None, description="VM service account (needed with artifact_bucket: the VMs read GCS as it)."
    )
    termination_action: Literal["DELETE", "STOP"] = Field(default="DELETE", description="On preemption.")
    api_endpoint: str | None = Field(default=None, description="Compute API endpoint override.")
    public_ip: bool = Field(
        default=True, description="Give each VM an external IP (off only where the subnet has Cloud NAT)."
    )
    artifact_bucket: str | None = Field(
        default=None,
        description="GCS bucket the VMs fetch variants from with their service account "
        "(gs://BUCKET/thrifty; the deploy copies each variant there and gives service_account_email "
        "roles/storage.objectViewer on it). thrifty's credentials need objectAdmin and "
        "getIamPolicy/setIamPolicy there (e.g. roles/storage.admin on the bucket).",
    )

    def _own_store(self) -> str | None:
        return f"gs://{self.artifact_bucket}/thrifty" if self.artifact_bucket else None

    def build_provider(self) -> Any:
        from thrifty.providers.gcp import GcpProvider, GcpTarget

        project = self.credentials.project
        if not project:
            from thrifty.errors import ConfigError

            raise ConfigError("the GcpCredentials block names no project", hint="set its project field")
        target = GcpTarget(
            project=project,
            zone_suffix=self.zone_suffix,
            network=self.network,
            image=self.image,
            service_account_email=self.service_account_email,
            termination_action=self.termination_action,
            api_endpoint=self.api_endpoint,
            public_ip=self.public_ip,
            boot=self._boot(),
        )
        return GcpProvider(target, credentials=self.credentials.get_credentials_from_service_account())


class AzureDeployTarget(_Boot):
    _block_type_name = "Thrifty Azure Target"
    _block_type_slug = "thrifty-azure-target"
    _description = "Azure VM settings for thrifty deployments (Spot and Regular)."

    credentials: AzureComputeCredentials = Field(
        default_factory=AzureComputeCredentials, description="Azure credentials."
    )
    subscription_id: str = Field(..., description="Subscription id.")
    resource_group: str = Field(..., description="Resource group for the VMs.")
    subnet_id: str = Field(..., description="Subnet resource id for the VMs' NICs.")
    ssh_public_key: str = Field(..., description="Public key for the admin user (not secret).")
    eviction_policy: Literal["Delete", "Deallocate"] = Field(default="Delete", description="On eviction.")
    base_url: str | None = Field(default=None, description="ARM endpoint override.")
    key_vault_url: str | None = Field(
        default=None, description="Key Vault (https://V.vault.azure.net) for the TLS key; empty: plain HTTP."
    )
    key_vault_id: str | None = Field(
        default=None,
        description="The vault's resource id, where each VM gets the role Key Vault Secrets User; "
        "empty: the vault named by key_vault_url in resource_group.",
    )
    public_ip: bool = Field(default=True, description="Give each VM a static public IP, deleted with it.")
    artifact_storage_account: str | None = Field(
        default=None,
        description="Storage account the VMs fetch variants from with their managed identity "
        "(az://ACCOUNT/CONTAINER/thrifty; the deploy copies each variant there and gives each VM's "
        "identity 'Storage Blob Data Reader' on the container). thrifty's identity needs 'Storage Blob "
        "Data Contributor' and roleAssignments/write and /delete there.",
    )
    artifact_storage_account_id: str | None = Field(
        default=None,
        description="The storage account's resource id (scope of the VMs' Storage Blob Data Reader "
        "role); empty: the account in resource_group.",
    )
    artifact_container: str = Field(
        default="thrifty-artifacts", description="Blob container in that account."
    )

    def _own_store(self) -> str | None:
        if not self.artifact_storage_account:
            return None
        return f"az://{self.artifact_storage_account}/{self.artifact_container}/thrifty"

    def build_provider(self) -> Any:
        from thrifty.providers.azure import AzureProvider, AzureTarget

        target = AzureTarget(
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            subnet_id=self.subnet_id,
            ssh_public_key=self.ssh_public_key,
            eviction_policy=self.eviction_policy,
            base_url=self.base_url,
            public_ip=self.public_ip,
            key_vault_url=self.key_vault_url,
            key_vault_id=self.key_vault_id,
            storage_account_id=self.artifact_storage_account_id,
            boot=self._boot(),
        )
        return AzureProvider(target, credential=self.credentials.get_credential())


class KubernetesDeployTarget(DeployTargetBlock):
    _block_type_name = "Thrifty Kubernetes Target"
    _block_type_slug = "thrifty-kubernetes-target"
    _description = "A cluster and namespace for thrifty deployments, spot placement and scale to zero."

    cluster_config: KubernetesClusterConfig | None = Field(
        default=None, description="Kubeconfig block; empty: the in-cluster service account."
    )
    namespace: str = Field(default="default", description="Namespace for the objects.")
    image: str = Field(
        default="",
        description="The serving-runtime image by digest (`thrifty image build --push REGISTRY` prints it).",
    )
    artifact_store_url: str = Field(default="s3://thrifty-artifacts", description="Where pods pull variants.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint override for the pods.")
    scale_to_zero: Literal["none", "keda", "knative"] = Field(
        default="none", description="Scale-to-zero engine."
    )
    spot_platform: Literal["karpenter", "gke", "aks"] = Field(
        default="karpenter", description="Spot node labels."
    )
    cpu: str = Field(default="1", description="CPU request per pod.")
    memory: str = Field(default="2Gi", description="Memory request and limit per pod.")
    max_replicas: int = Field(default=10, description="Autoscaler ceiling.")

    def target(self) -> Any:
        from thrifty.providers.k8s_manifests import KubernetesTarget

        return KubernetesTarget(
            namespace=self.namespace,
            image=self.image,
            artifact_store_url=self.artifact_store_url,
            s3_endpoint_url=self.s3_endpoint_url,
            scale_to_zero=self.scale_to_zero,
            spot_platform=self.spot_platform,
            cpu=self.cpu,
            memory=self.memory,
            max_replicas=self.max_replicas,
        )

    def build_provider(self) -> Any:
        from kubernetes import client, config

        from thrifty.providers.kubernetes import KubernetesProvider

        if self.cluster_config is None:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api = client.ApiClient(configuration)
        else:
            api = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
                self.cluster_config.config, context=self.cluster_config.context_name
            )
        return KubernetesProvider(api, self.target())


def _concrete(cls: type[Block]) -> list[type[DeployTargetBlock]]:
    found: list[type[DeployTargetBlock]] = []
    for sub in cls.__subclasses__():
        if ABC not in sub.__bases__ and issubclass(sub, DeployTargetBlock):
            found.append(sub)
        found += _concrete(sub)
    return found


def target_blocks() -> dict[str, type[DeployTargetBlock]]:
    """Block type slug → the block class that configures that target (every concrete subclass)."""
    base: type[Block] = DeployTargetBlock
    return {cls.get_block_type_slug(): cls for cls in _concrete(base)}


class _Serverless(DeployTargetBlock, ABC):
    """Fields every serverless target shares (abstract: not a block type of its own)."""

    image: str = Field(
        default="",
        description="The serving-runtime image by digest in this cloud's registry "
        "(`thrifty image build --push REGISTRY` prints it).",
    )
    artifact_store_url: str = Field(
        default=DEFAULT_STORE_URL,
        description="Where the runtime fetches variants (s3://bucket/prefix).",
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint override for the runtime.")

    def _boot(self) -> Any:
        from thrifty.providers.boot import BootConfig

        return BootConfig(
            artifact_store_url=self.artifact_store_url, s3_endpoint_url=self.s3_endpoint_url, image=self.image
        )


class AwsLambdaDeployTarget(_Serverless):
    _block_type_name = "Thrifty AWS Lambda Target"
    _block_type_slug = "thrifty-aws-lambda-target"
    _description = "Lambda settings for thrifty's serverless deployments (function URL, versions, alias)."

    credentials: AwsCredentials = Field(default_factory=AwsCredentials, description="AWS credentials.")
    region: str = Field(default="us-east-1", description="Region of the functions.")
    role_arn: str = Field(..., description="Execution role the functions assume (S3 read of the artifacts).")
    package: Literal["image", "zip"] = Field(
        default="image", description="Container image from ECR, or a .zip."
    )
    zip_roots: list[str] = Field(
        default_factory=list, description="zip: folders whose entries make the package."
    )
    code_bucket: str | None = Field(default=None, description="zip: S3 bucket staging packages over 50 MB.")
    url_auth_type: Literal["NONE", "AWS_IAM"] = Field(
        default="NONE", description="Function URL auth (NONE: the runtime checks the deployment's token)."
    )
    max_concurrency: int | None = Field(default=None, description="Reserved concurrency (the ceiling).")

    def build_provider(self) -> Any:
        from thrifty.providers.aws_lambda import LambdaProvider, LambdaTarget

        target = LambdaTarget(
            role_arn=self.role_arn,
            region=self.region,
            endpoint_url=self.credentials.endpoint_url,
            package=self.package,
            zip_roots=tuple(self.zip_roots),
            code_bucket=self.code_bucket,
            url_auth_type=self.url_auth_type,
            max_concurrency=self.max_concurrency,
            boot=self._boot(),
        )
        return LambdaProvider(target, session=self.credentials.get_boto3_session())


class CloudRunDeployTarget(_Serverless):
    _block_type_name = "Thrifty GCP Cloud Run Target"
    _block_type_slug = "thrifty-gcp-cloud-run-target"
    _description = "Cloud Run settings for thrifty's serverless deployments (min instances 0, revisions)."

    credentials: GcpCredentials = Field(default_factory=GcpCredentials, description="GCP credentials.")
    base_url: str = Field(default="https://run.googleapis.com", description="Cloud Run Admin API endpoint.")
    service_account_email: str | None = Field(
        default=None, description="Identity of the service's instances."
    )
    public: bool = Field(default=True, description="No invoker IAM check (the runtime checks the token).")
    max_instances: int = Field(default=20, description="Autoscaling ceiling.")

    def build_provider(self) -> Any:
        from thrifty.errors import ConfigError
        from thrifty.providers.cloud_run import CloudRunProvider, CloudRunTarget

        if not self.credentials.project:
            raise ConfigError("the GcpCredentials block names no project", hint="set its project field")
        target = CloudRunTarget(
            project=self.credentials.project,
            base_url=self.base_url,
            service_account_email=self.service_account_email,
            public=self.public,
            max_instances=self.max_instances,
            boot=self._boot(),
        )
        credentials = self.credentials.get_credentials_from_service_account()

        def token() -> str:
            import google.auth.transport.requests

            credentials.refresh(google.auth.transport.requests.Request())
            return str(credentials.token)

        return CloudRunProvider(target, token=token)


class ContainerAppsDeployTarget(_Serverless):
    _block_type_name = "Thrifty Azure Container Apps Target"
    _block_type_slug = "thrifty-azure-container-apps-target"
    _description = "Container Apps settings for thrifty's serverless deployments (min replicas 0, revisions)."

    credentials: AzureComputeCredentials = Field(
        default_factory=AzureComputeCredentials, description="Azure credentials."
    )
    subscription_id: str = Field(..., description="Subscription id.")
    resource_group: str = Field(..., description="Resource group of the apps.")
    environment_id: str = Field(..., description="Resource id of the Container Apps managed environment.")
    base_url: str = Field(default="https://management.azure.com", description="ARM endpoint.")
    registry_identity: str | None = Field(default=None, description="Managed identity that pulls from ACR.")
    max_replicas: int = Field(default=20, description="Autoscaling ceiling.")

    def build_provider(self) -> Any:
        from thrifty.providers.container_apps import ContainerAppsProvider, ContainerAppsTarget, azure_token

        target = ContainerAppsTarget(
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            environment_id=self.environment_id,
            base_url=self.base_url,
            registry_identity=self.registry_identity,
            max_replicas=self.max_replicas,
            boot=self._boot(),
        )
        return ContainerAppsProvider(target, token=azure_token(self.credentials.get_credential()))


#: the target blocks defined here (a descriptor's ``block_slug`` in ``thrifty.targets`` names each)
TARGET_BLOCKS = target_blocks()
