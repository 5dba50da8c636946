"""Cross-cloud artifacts: the variant is copied to the store the target's VMs read (moto's S3, and the
GCS and Azure Blob doubles), checked by sha256, once, with the target provider's own credentials;
each copy and the plan price it with the source cloud's egress rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from thrifty.artifacts.local import LocalStore
from thrifty.artifacts.s3 import S3Store
from thrifty.artifacts.transfer import EGRESS_USD_PER_GB, copy_for_deploy, egress_usd, store_cloud
from thrifty.providers.specs import copy_artifacts


@pytest.mark.parametrize(
    ("url", "cloud"),
    [
        ("s3://b/p", "aws"),
        ("gs://b/p", "gcp"),
        ("https://a.blob.core.windows.net/c", "azure"),
        ("az://account/container/p", "azure"),
        ("/srv/a", "local"),
    ],
)
def test_the_store_url_says_which_cloud_bills_egress(url: str, cloud: str) -> None:
    assert store_cloud(url) == cloud


@pytest.mark.parametrize(
    ("source", "target", "usd"),
    [
        ("aws", "gcp", 2 * EGRESS_USD_PER_GB["aws"]),  # the source cloud bills its egress
        ("gcp", "aws", 2 * EGRESS_USD_PER_GB["gcp"]),
        ("azure", "aws", 2 * EGRESS_USD_PER_GB["azure"]),
        ("aws", "aws", 0.0),  # no copy within a cloud
        ("local", "aws", 0.0),  # ingress is free; this machine's uplink is no cloud bill
    ],
)
def test_egress_is_priced_by_the_source_cloud(source: str, target: str, usd: float) -> None:
    assert egress_usd(source, target, 2_000_000_000) == pytest.approx(usd)
    assert isinstance(egress_usd(source, target, 1), float)


@pytest.fixture
def stores(moto: str, tmp_path: Path) -> tuple[LocalStore, S3Store]:
    boto3.client("s3", endpoint_url=moto, region_name="us-east-1").create_bucket(Bucket="target-bucket")
    target = S3Store("s3://target-bucket/models", endpoint_url=moto, cache_dir=tmp_path / "cache")
    return LocalStore(tmp_path / "local"), target


def test_a_variant_elsewhere_is_copied_once_and_verified(
    stores: tuple[LocalStore, S3Store], tmp_path: Path
) -> None:
    local, target = stores
    blob = tmp_path / "v.onnx"
    blob.write_bytes(b"weights" * 1000)
    sha = local.put_file(blob).sha256
    [first] = copy_for_deploy(local, target, [sha, sha])
    assert first.copied and first.size_bytes == 7000 and target.exists(sha)
    assert target.fetch(sha).read_bytes() == blob.read_bytes()
    [again] = copy_for_deploy(local, target, [sha])
    assert not again.copied, "content-addressed: a second deploy copies nothing"


def test_a_blob_the_source_lacks_is_not_copied(stores: tuple[LocalStore, S3Store]) -> None:
    local, target = stores
    [skipped] = copy_for_deploy(local, target, ["ee" * 32])
    assert not skipped.copied and not target.exists("ee" * 32)


def test_deploy_copies_the_variant_to_the_target_store(
    aws: Any, make_spec: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: str
) -> None:
    from thrifty.settings import get_settings

    local = LocalStore(tmp_path / "home-store")
    blob = tmp_path / "variant.onnx"
    blob.write_bytes(b"a variant that lives on this machine" * 50)
    sha = local.put_file(blob).sha256
    monkeypatch.setenv("THRIFTY_ARTIFACT_STORE_URL", str(tmp_path / "home-store"))
    get_settings.cache_clear()
    try:
        copied = copy_artifacts(make_spec(artifact_sha256=sha), aws)
    finally:
        get_settings.cache_clear()
    assert [(c["sha256"], c["to_url"]) for c in copied] == [(sha, aws.target.boot.artifact_store_url)]
    target = S3Store(aws.target.boot.artifact_store_url, endpoint_url=moto, cache_dir=tmp_path / "c")
    assert target.fetch(sha).read_bytes() == blob.read_bytes()


def test_the_plan_prices_the_copy_per_candidate() -> None:
    from thrifty.planner.decision import Decision
    from thrifty.planner.transfer import price_transfer, transfer_lines

    chosen = {"variant": "int8", "provider": "gcp", "usd_per_month": 10.0}
    other = {"variant": "fp32", "provider": "aws", "usd_per_month": 12.0}
    decision = Decision("m", {}, {}, {}, {}, chosen, [other], [], [], [], 2)
    price_transfer(decision, {"int8": 500_000_000, "fp32": 2_000_000_000}, "s3://bucket/models")
    assert chosen["artifact_transfer_usd"] == pytest.approx(0.5 * EGRESS_USD_PER_GB["aws"])
    assert other["artifact_transfer_usd"] == 0.0, "aws store → aws VM: no egress"
    record = decision.to_dict()
    assert (
        record["artifact_transfer"]["source_cloud"] == "aws"
        and "Data Transfer OUT" in record["artifact_transfer"]["rates_source"]
    )
    [line] = transfer_lines(record)
    assert "0.500 GB" in line and "gcp" in line and f"${0.5 * EGRESS_USD_PER_GB['aws']:.4f} once" in line


def _gcp_and_azure(replay_server: Any, tmp_path: Path) -> tuple[Any, Any, Any, Any]:
    """A GCP and an Azure provider whose targets read their own cloud's store (the doubles)."""
    from dataclasses import replace

    from google.oauth2.credentials import Credentials

    from tests.unit.providers.conftest import TEST_BOOT
    from tests.unit.providers.storage_doubles import FakeAzureBlob, FakeGcs
    from tests.unit.providers.test_azure import RG, SUB, TOKEN, StaticToken
    from tests.unit.providers.test_gcp import GCP_TOKEN, PROJECT
    from thrifty.providers.azure import AzureProvider, AzureTarget
    from thrifty.providers.gcp import GcpProvider, GcpTarget

    gcs = FakeGcs(replay_server, writers={GCP_TOKEN}, buckets={"models": {}})
    blob = FakeAzureBlob(replay_server, writers={TOKEN}, containers={"models": {}})
    gcp_boot = replace(TEST_BOOT, artifact_store_url="gs://models/thrifty", store_endpoint_url=gcs.url)
    gcp = GcpProvider(GcpTarget(project=PROJECT, api_endpoint=replay_server.url, boot=gcp_boot),
                      credentials=Credentials(token=GCP_TOKEN))  # fmt: skip
    az_boot = replace(
        TEST_BOOT, artifact_store_url=f"az://{blob.account}/models/thrifty", store_endpoint_url=blob.url
    )
    subnet = (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
    )
    azure = AzureProvider(AzureTarget(SUB, RG, subnet, "ssh-ed25519 AAAA t", base_url=replay_server.url, boot=az_boot),
                          credential=StaticToken())  # fmt: skip
    return gcp, gcs, azure, blob


def test_deploy_copies_into_gcs_and_azure_blob_with_the_providers_credentials_priced_by_source(
    replay_server: Any, make_spec: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From this machine's folder (no egress bill) into each cloud's own store, written with the
    target provider's token (the doubles refuse any other); then GCS → Azure Blob, billed at GCP's
    egress rate. A second deploy copies nothing."""
    from thrifty.artifacts import open_store
    from thrifty.artifacts.bearer import StaticBearer
    from thrifty.settings import get_settings

    gcp, gcs, azure, blob = _gcp_and_azure(replay_server, tmp_path)
    variant = tmp_path / "variant.onnx"
    variant.write_bytes(b"a variant that lives on this machine" * 100)
    sha = LocalStore(tmp_path / "home-store").put_file(variant).sha256
    monkeypatch.setenv("THRIFTY_ARTIFACT_STORE_URL", str(tmp_path / "home-store"))
    get_settings.cache_clear()
    try:
        to_gcs = copy_artifacts(make_spec(artifact_sha256=sha), gcp)
        to_azure = copy_artifacts(make_spec(artifact_sha256=sha), azure)
        assert copy_artifacts(make_spec(artifact_sha256=sha), gcp) == [], "already there: nothing copied"
    finally:
        get_settings.cache_clear()
    key = f"thrifty/sha256/{sha[:2]}/{sha}"
    assert [(c["to_url"], c["egress_usd"]) for c in to_gcs] == [("gs://models/thrifty", 0.0)]
    assert [(c["to_url"], c["egress_usd"]) for c in to_azure] == [(azure.target.boot.artifact_store_url, 0.0)]
    assert gcs.buckets["models"][key].data == blob.containers["models"][key].data == variant.read_bytes()
    blob.containers["models"].clear()
    source = open_store("gs://models/thrifty", endpoint_url=gcs.url, credentials=gcp.store_credentials(),
                        cache_dir=tmp_path / "c")  # fmt: skip
    target = open_store(azure.target.boot.artifact_store_url, endpoint_url=blob.url,
                        credentials=StaticBearer("someone-elses-token"))  # fmt: skip
    from thrifty.errors import CredentialsError

    with pytest.raises(CredentialsError, match="401"):
        copy_for_deploy(source, target, [sha])
    target = open_store(azure.target.boot.artifact_store_url, endpoint_url=blob.url,
                        credentials=azure.store_credentials())  # fmt: skip
    [across] = copy_for_deploy(source, target, [sha])
    assert across.copied and across.egress_usd == pytest.approx(
        len(variant.read_bytes()) * EGRESS_USD_PER_GB["gcp"] / 1e9
    )


def test_gcp_and_azure_blocks_default_to_their_own_clouds_store_when_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from google.oauth2.credentials import Credentials

    from blocks.credentials import GcpCredentials
    from blocks.targets import AzureDeployTarget, GcpDeployTarget

    # the real block builds its credentials at once (Application Default Credentials: none here)
    monkeypatch.setattr(GcpCredentials, "get_credentials_from_service_account", lambda self: Credentials("t"))
    gcp = {"credentials": GcpCredentials(project="p")}

    azure = {"subscription_id": "s", "resource_group": "rg", "subnet_id": "sn", "ssh_public_key": "k"}
    assert GcpDeployTarget(**gcp)._boot().artifact_store_url == "s3://thrifty-artifacts", "unset: as before"
    own_gcs = GcpDeployTarget(**gcp, artifact_bucket="b")
    assert own_gcs._boot().artifact_store_url == "gs://b/thrifty"
    loaded = GcpDeployTarget.model_validate(own_gcs.model_dump())  # as a saved block comes back: all set
    assert loaded._boot().artifact_store_url == "gs://b/thrifty"
    own = AzureDeployTarget(
        **azure, artifact_storage_account="acct", store_endpoint_url="http://127.0.0.1:1/acct"
    )
    assert (own._boot().artifact_store_url, own._boot().store_endpoint_url) == (
        "az://acct/thrifty-artifacts/thrifty",
        "http://127.0.0.1:1/acct",
    )
    from blocks.credentials import AzureComputeCredentials

    monkeypatch.setattr(AzureComputeCredentials, "get_credential", lambda self: object())
    account_id = "/subscriptions/s/resourceGroups/data-rg/providers/Microsoft.Storage/storageAccounts/acct"
    credentials = AzureComputeCredentials(client_id="a", tenant_id="t", client_secret="x")
    built = AzureDeployTarget(**azure, credentials=credentials, artifact_storage_account="acct",
                              artifact_storage_account_id=account_id).build_provider()  # fmt: skip
    assert built._store_scope() == f"{account_id}/blobServices/default/containers/thrifty-artifacts", (
        "the VMs' Storage Blob Data Reader scope is the container in the account the block names"
    )
    explicit = GcpDeployTarget(**gcp, artifact_bucket="b", artifact_store_url="s3://mine/x")
    assert explicit._boot().artifact_store_url == "s3://mine/x", "an explicit store URL wins"
