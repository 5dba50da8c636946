"""Credential and target blocks: shapes, all-or-none rules, and secrets kept out of everything a
person or a log sees (repr, validation errors, provider errors, captured logs)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.exceptions import ClientError

from blocks.credentials import (
    AwsCredentials,
    AzureComputeCredentials,
    GcpCredentials,
    KubernetesClusterConfig,
)
from blocks.targets import TARGET_BLOCKS, AwsDeployTarget, KubernetesDeployTarget
from tests.unit.providers.conftest import RUNTIME_IMAGE
from thrifty.errors import CredentialsError

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def test_reused_blocks_come_from_the_prefect_collections() -> None:
    assert GcpCredentials.__module__.startswith("prefect_gcp")
    assert KubernetesClusterConfig.__module__.startswith("prefect_kubernetes")
    from thrifty.targets import all_targets

    # every target that needs configuration has its block class, under the descriptor's slug
    assert set(TARGET_BLOCKS) == {d.block_slug for d in all_targets().values() if d.block_slug}


def test_aws_keys_come_in_pairs_and_hide_the_secret() -> None:
    with pytest.raises(ValueError, match="together") as info:
        AwsCredentials(aws_secret_access_key=SECRET)
    assert SECRET not in str(info.value)
    creds = AwsCredentials(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key=SECRET)
    assert SECRET not in repr(creds) and SECRET not in str(creds.model_dump())
    session = creds.get_boto3_session()
    assert session.get_credentials().secret_key == SECRET  # the client still gets it


def test_azure_credentials_all_or_none() -> None:
    with pytest.raises(ValueError, match="together") as info:
        AzureComputeCredentials(tenant_id="tenant-x", client_secret=SECRET)
    assert SECRET not in str(info.value)
    full = AzureComputeCredentials(client_id="c", tenant_id="t", client_secret=SECRET)
    assert SECRET not in repr(full)
    assert type(full.get_credential()).__name__ == "ClientSecretCredential"
    assert type(AzureComputeCredentials().get_credential()).__name__ == "DefaultAzureCredential"  # never used


def test_a_rejected_key_is_a_credentials_error_without_the_secret(
    moto: str, make_spec: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = AwsCredentials(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key=SECRET, endpoint_url=moto)
    provider = AwsDeployTarget(
        credentials=creds, image=RUNTIME_IMAGE, allowed_cidrs=["198.51.100.0/24"]
    ).build_provider()

    def refuse(**_: Any) -> None:
        error = {
            "Error": {
                "Code": "AuthFailure",
                "Message": "AWS was not able to validate the provided access credentials",
            }
        }
        raise ClientError(error, "RunInstances")  # type: ignore[arg-type]

    provider.ec2.meta.events.register("before-parameter-build.ec2.RunInstances", refuse)
    with pytest.raises(CredentialsError) as info:
        provider.deploy(make_spec())
    assert "AuthFailure" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in (info.value.hint or "")
    assert SECRET not in caplog.text


def test_kubernetes_target_builds_a_client_from_the_cluster_config_block() -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": SECRET}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    block = KubernetesDeployTarget(
        cluster_config=KubernetesClusterConfig(config=kubeconfig, context_name="ctx"),
        namespace="ml",
        spot_platform="gke",
    )
    provider = block.build_provider()
    assert provider.api.configuration.host == "http://127.0.0.1:1"
    assert (provider.target.namespace, provider.target.spot_platform) == ("ml", "gke")
