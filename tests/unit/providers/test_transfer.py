"""Cross-cloud artifacts: the variant is copied to the store the target's VMs read (moto's S3 here),
checked by sha256, once; the plan prices that copy with the source cloud's egress rate."""

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
