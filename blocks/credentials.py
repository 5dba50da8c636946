"""Credential blocks for the deploy targets.

- ``GcpCredentials`` (prefect-gcp) and ``KubernetesClusterConfig`` (prefect-kubernetes) are reused
  as they are: both install beside prefect 3.9.1 without moving another pin.
- ``AwsCredentials`` here has the shape of prefect-aws's block (access key id, secret, session
  token, profile, region, endpoint) under its own slug: prefect-aws would downgrade boto3/botocore
  below the project's pins, so it is not installed.
- ``AzureComputeCredentials``: a service principal (client id, tenant, secret) given all together,
  or none of them for ``DefaultAzureCredential`` (managed identity, az login, environment).

Secrets are ``SecretStr``: they print as ``**********`` in repr, logs, the UI and error messages.
A block builds the client object; nothing else reads a raw key.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from prefect_gcp import GcpCredentials
from prefect_kubernetes.credentials import KubernetesClusterConfig
from pydantic import ConfigDict, Field, SecretStr, model_validator

__all__ = ["AwsCredentials", "AzureComputeCredentials", "GcpCredentials", "KubernetesClusterConfig"]


class AwsCredentials(Block):
    """AWS keys (or a profile) for EC2 and S3; empty fields fall back to boto3's own chain."""

    _block_type_name = "Thrifty AWS Credentials"
    _block_type_slug = "thrifty-aws-credentials"
    _description = "AWS credentials for thrifty's EC2 deploy target (same fields as prefect-aws)."
    model_config = ConfigDict(hide_input_in_errors=True)  # a validation error never echoes a secret

    aws_access_key_id: str | None = Field(default=None, description="Access key id (not secret).")
    aws_secret_access_key: SecretStr | None = Field(default=None, description="Secret access key.")
    aws_session_token: SecretStr | None = Field(default=None, description="Session token (STS).")
    profile_name: str | None = Field(default=None, description="Named profile of ~/.aws/config.")
    region_name: str | None = Field(default=None, description="Default region, e.g. us-east-1.")
    endpoint_url: str | None = Field(default=None, description="Endpoint override (moto, a VPC endpoint).")

    @model_validator(mode="after")
    def _pairs(self) -> AwsCredentials:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("give aws_access_key_id and aws_secret_access_key together, or neither")
        return self

    def get_boto3_session(self) -> Any:
        import boto3

        def reveal(secret: SecretStr | None) -> str | None:
            return secret.get_secret_value() if secret is not None else None

        return boto3.session.Session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=reveal(self.aws_secret_access_key),
            aws_session_token=reveal(self.aws_session_token),
            profile_name=self.profile_name,
            region_name=self.region_name,
        )


class AzureComputeCredentials(Block):
    """A service principal for Azure Compute, or DefaultAzureCredential when all fields are empty."""

    _block_type_name = "Azure Compute Credentials"
    _block_type_slug = "thrifty-azure-compute-credentials"
    _description = "Service principal (client id, tenant, secret) or DefaultAzureCredential."
    model_config = ConfigDict(hide_input_in_errors=True)  # a validation error never echoes a secret

    client_id: SecretStr | None = Field(default=None, description="Application (client) id.")
    tenant_id: SecretStr | None = Field(default=None, description="Directory (tenant) id.")
    client_secret: SecretStr | None = Field(default=None, description="Client secret.")

    @model_validator(mode="after")
    def _all_or_none(self) -> AzureComputeCredentials:
        given = [v is not None for v in (self.client_id, self.tenant_id, self.client_secret)]
        if any(given) and not all(given):
            raise ValueError(
                "give client_id, tenant_id and client_secret together, "
                "or none of them to use DefaultAzureCredential"
            )
        return self

    def get_credential(self) -> Any:
        """A token credential for azure-mgmt clients."""
        if self.client_id is None or self.tenant_id is None or self.client_secret is None:
            from azure.identity import DefaultAzureCredential

            return DefaultAzureCredential()
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            tenant_id=self.tenant_id.get_secret_value(),
            client_id=self.client_id.get_secret_value(),
            client_secret=self.client_secret.get_secret_value(),
        )
