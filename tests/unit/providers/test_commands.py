"""`thrifty deploy` and `thrifty gc` through the real CLI (typer's runner): dry runs need no
credentials; the AWS deploy and the gc sweep run against moto's HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from tests.unit.providers.conftest import RUNTIME_IMAGE
from thrifty.cli import app


@pytest.fixture
def artifact_sha(s3_artifact: tuple[str, str]) -> str:
    return s3_artifact[1]


@pytest.fixture
def variant_id(thrifty_home: Path, artifact_sha: str) -> Iterator[int]:
    from thrifty import runtime

    registry = runtime.registry()
    artifact = registry.upsert_artifact(artifact_sha, 3900, f"s3://thrifty-artifacts/models/{artifact_sha}")
    version, _ = registry.add_model_version(
        "MiniLM", sha256=artifact_sha, artifact=artifact, format="onnx", size_bytes=3900, source_path="/m"
    )
    variant, _ = registry.add_variant(version.id, "int8", technique="int8_dynamic", artifact=artifact)
    yield variant.id


@pytest.fixture
def s3_store_env(monkeypatch: pytest.MonkeyPatch, s3_artifact: tuple[str, str], moto: str) -> None:
    from thrifty import runtime

    monkeypatch.setenv("THRIFTY_ARTIFACT_STORE_URL", s3_artifact[0])
    monkeypatch.setenv("THRIFTY_S3_ENDPOINT_URL", moto)
    monkeypatch.setenv("THRIFTY_AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("THRIFTY_RUNTIME_IMAGE", RUNTIME_IMAGE)  # what `thrifty image build --push` printed
    monkeypatch.setenv("THRIFTY_CONTROL_PLANE_CIDRS", '["198.51.100.0/24"]')  # the network rule's source
    runtime.get_settings.cache_clear()


def _run(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result


def test_kubernetes_dry_run_prints_valid_manifests(variant_id: int, s3_store_env: None) -> None:
    result = _run(
        "deploy", str(variant_id), "--target", "kubernetes", "--dry-run", "--spot", "--replicas", "2"
    )
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    assert [d["kind"] for d in docs] == [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    assert docs[0]["metadata"]["name"] == "minilm-int8"
    assert docs[0]["spec"]["template"]["spec"]["nodeSelector"] == {"karpenter.sh/capacity-type": "spot"}


def test_aws_dry_run_prints_the_launch_template_and_creates_nothing(
    variant_id: int, s3_store_env: None, moto: str
) -> None:
    import boto3

    result = _run("deploy", str(variant_id), "--target", "aws", "--dry-run", "--spot")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["InstanceType"] == "c7g.large" and data["UserData"]
    ec2 = boto3.client("ec2", endpoint_url=moto, region_name="us-east-1")
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []


def test_deploy_to_aws_then_gc_dry_run_lists_the_orphans(variant_id: int, s3_store_env: None) -> None:
    from thrifty import runtime

    result = _run("deploy", str(variant_id), "--target", "aws", "--spot", "--replicas", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["state"] == "running"
    assert runtime.registry().get_deployment("minilm-int8").provider == "aws"

    runtime.registry().delete_deployment("minilm-int8")
    listed = json.loads(_run("gc", "--dry-run", "--grace-s", "0", "--json").output)
    assert listed["dry_run"] is True
    kinds = ["instance", "instance", "launch-template", "security-group"]
    assert sorted(o["kind"] for o in listed["orphans"]) == kinds
    deleted = json.loads(_run("gc", "--grace-s", "0", "--json").output)
    assert len(deleted["orphans"]) == 4
    assert json.loads(_run("gc", "--grace-s", "0", "--json").output)["orphans"] == []


def test_young_orphans_wait_for_the_grace_period(variant_id: int, s3_store_env: None) -> None:
    from thrifty import runtime

    _run("deploy", str(variant_id), "--target", "aws", "--replicas", "1", "--json")
    runtime.registry().delete_deployment("minilm-int8")
    assert json.loads(_run("gc", "--dry-run", "--json").output)["orphans"] == []  # default grace 900 s


def test_a_local_artifact_store_is_refused_for_a_cloud_deploy(variant_id: int) -> None:
    from thrifty.errors import ConfigError

    with pytest.raises(ConfigError, match="local folder a cloud VM cannot read"):
        _run("deploy", str(variant_id), "--target", "aws")


def test_unknown_target_names_the_valid_ones(variant_id: int) -> None:
    from thrifty.errors import ConfigError

    with pytest.raises(ConfigError, match="aws, gcp, azure, kubernetes"):
        _run("deploy", str(variant_id), "--target", "oracle", "--dry-run")


@pytest.mark.parametrize(
    ("target", "extra", "spot_key"),
    [
        ("gcp", ["--project", "p1", "--region", "us-central1"], "scheduling"),
        ("azure", ["--region", "eastus"], "properties"),
    ],
)
def test_vm_dry_runs_print_the_request_bodies(
    variant_id: int, s3_store_env: None, target: str, extra: list[str], spot_key: str
) -> None:
    result = _run(
        "deploy", str(variant_id), "--target", target, "--dry-run", "--spot", "--replicas", "2", *extra
    )
    assert result.exit_code == 0, result.output
    bodies = json.loads(result.output)
    assert [b["name"] if "name" in b else b["properties"]["osProfile"]["computerName"] for b in bodies] == [
        "thrifty-minilm-int8-0",
        "thrifty-minilm-int8-1",
    ]
    if target == "gcp":
        assert bodies[0]["scheduling"]["provisioning_model"] == "SPOT"
    else:
        assert bodies[0]["properties"]["priority"] == "Spot"
        assert bodies[0]["properties"]["billingProfile"] == {"maxPrice": -1}


@pytest.mark.parametrize(
    ("target", "instance_type", "region", "expected"),
    [
        ("aws-lambda", "lambda-1769mb", "us-east-1", '"MemorySize": 1769'),
        ("gcp-cloud-run", "cloud-run-1vcpu-2gib", "us-central1", '"memory": "2048Mi"'),
        ("azure-container-apps", "container-apps-1vcpu-2gib", "eastus", '"minReplicas": 0'),
    ],
)
def test_serverless_dry_runs_print_the_resource_and_create_nothing(
    variant_id: int, s3_store_env: None, target: str, instance_type: str, region: str, expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv(
        "THRIFTY_RUNTIME_IMAGE", "123456789012.dkr.ecr.us-east-1.amazonaws.com/rt@sha256:" + "2" * 64
    )
    result = _run("deploy", str(variant_id), "--target", target, "--dry-run", "--instance-type", instance_type,
                  "--region", region, "--replicas", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert expected in result.output and "THRIFTY_ARTIFACT_SHA256" in result.output
