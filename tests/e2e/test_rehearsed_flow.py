"""deploy-model end to end on AWS through the rehearsal, verified by inference (the default).

The flow deploys to moto's EC2 with a saved AWS target block; each instance it launches boots a
rehearsed VM (``thrifty.rehearsal.boot_on_launch``) from the exact user data of its launch. The
VM's runtime container reads its TLS key and token digest from moto's Secrets Manager with the
instance-metadata stand-in's role credentials, fetches the variant from moto's S3 and serves HTTPS
on a loopback port. ``THRIFTY_RESOLVE`` sends the instance's moto IP to that port (curl's
--resolve as a setting: no test branch in the flow), so the flow's own smoke test — readiness, one
inference with the deployment's token, compared with the original — passes through the pinned
certificate. A wrong token is refused; the certificate's fingerprint is pinned in the registry.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.flows.test_deploy_model import IN_FEATURES, build_classifier
from tests.flows.test_deploy_model_cloud import (
    BUCKET,
    STORE_URL,
    _delete_target_blocks,
    _save_aws_target,
    run_cloud_flow,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def vm_base() -> str:
    from thrifty.rehearsal import vm_image

    return vm_image()


@pytest.fixture
def aws_home(thrifty_home: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh THRIFTY_HOME whose artifact store is S3 on an emptied moto; target blocks removed after."""
    import boto3
    import httpx

    from thrifty import runtime

    httpx.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("THRIFTY_ARTIFACT_STORE_URL", STORE_URL)
    monkeypatch.setenv("THRIFTY_S3_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("THRIFTY_GATEWAY_PORT", str(free_port()))
    monkeypatch.delenv("THRIFTY_API_TOKENS", raising=False)
    runtime.reset()
    try:
        yield thrifty_home
    finally:
        _delete_target_blocks()


def _infer(client: Any, url: str, token: str) -> int:
    body = {
        "inputs": [{"name": "x", "shape": [1, IN_FEATURES], "datatype": "FP32", "data": [0.0] * IN_FEATURES}]
    }
    return int(client.post(url, json=body, headers={"Authorization": f"Bearer {token}"}).status_code)


def test_deploy_model_serves_https_from_a_rehearsed_aws_vm(
    prefect_harness: None,
    vm_base: str,
    pushed_image: str,
    aws_home: Path,
    moto_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    from thrifty import runtime, tokens
    from thrifty.reach import endpoint_client
    from thrifty.rehearsal import boot_on_launch, metadata_server

    port = free_port()
    rule = f"*:{port}:127.0.0.1"
    monkeypatch.setenv("THRIFTY_RESOLVE", json.dumps([rule]))
    runtime.reset()
    moto = moto_server
    _save_aws_target(moto, image=pushed_image, port=port, secrets_endpoint_url=moto, insecure_registry=True)
    ec2 = boto3.client("ec2", endpoint_url=moto, region_name="us-east-1")
    tiny_model = build_classifier(tmp_path / "tiny.onnx")
    with metadata_server() as imds, boot_on_launch(ec2, "tiny", imds) as launches:
        summary = run_cloud_flow(
            tiny_model, verify="inference", target="aws", providers=["aws"], regions=["us-east-1"]
        )
        assert launches.errors == [] and len(launches.vms) >= 1
        smoke = summary["smoke_test"]
        assert smoke["ok"] and smoke["metric"] == "cosine_min" and smoke["value"] >= smoke["threshold"]
        row = runtime.registry().get_deployment("tiny")
        assert row.state == "running" and row.endpoint_url and row.endpoint_url.startswith("https://")
        assert not row.endpoint_url.startswith("https://127.0.0.1")  # the instance's own address
        assert len(row.spec["serving"]["tls_cert_sha256"]) == 64 and "secret_bundle" not in row.spec
        token = tokens.token_for(aws_home, "tiny")
        url = f"{row.endpoint_url}/v2/models/tiny/infer"
        with endpoint_client(row.spec, [rule]) as client:
            assert _infer(client, url, token) == 200
            assert _infer(client, url, secrets.token_urlsafe(32)) in (401, 403)
        user_data = _launch_user_data(ec2)
        assert token not in user_data and "PRIVATE KEY" not in user_data
    from tasks.providers import build_provider, choice_for

    build_provider(choice_for("aws")).delete("tiny")


def _launch_user_data(ec2: Any) -> str:
    import base64

    template = ec2.describe_launch_template_versions(LaunchTemplateName="thrifty-tiny")
    return base64.b64decode(template["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()
