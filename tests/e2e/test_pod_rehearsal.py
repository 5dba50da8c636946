"""The Kubernetes pod, rehearsed: the container spec thrifty's manifests give the kubelet (the
runtime image by digest, its env, its user, an emptyDir, the deployment's Secret mounted as files)
runs under podman, and is probed as the kubelet probes it (startup and liveness on
/v2/health/live, readiness on /v2/health/ready, over HTTPS). The served answer then comes through a
client that trusts only the pinned certificate, with the deployment's token; a wrong one is refused.

What it cannot show: a real scheduler, the Service's routing, the platform's pod identity (the
rehearsal injects the metadata stand-in's address, as EKS Pod Identity injects its own)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import podman, tiny_onnx

pytestmark = pytest.mark.slow


def _pod(
    image: str, sha: str, token: str, moto: str, port: int
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    from pydantic import SecretStr

    from thrifty import tls
    from thrifty.providers.base import DeploySpec
    from thrifty.providers.k8s_manifests import KubernetesTarget, manifests

    cert = tls.make_cert("tiny")
    token_sha = hashlib.sha256(token.encode()).hexdigest()
    spec = DeploySpec(
        name="tiny", model_name="tiny", variant_id=1, artifact_sha256=sha, region="us-east-1",
        instance_type="c7g.large", replicas=1,
        serving={"token_sha256": token_sha, "tls_cert_sha256": cert.sha256, "tls_cert_pem": cert.cert_pem},
        secret_bundle=SecretStr(tls.secret_bundle(cert, token_sha)),
    )  # fmt: skip
    target = KubernetesTarget(
        image=image, artifact_store_url="s3://artifacts/blobs", s3_endpoint_url=moto, port=port
    )
    secret, deployment = manifests(spec, target)[:2]
    return secret, deployment["spec"]["template"]["spec"], spec


def _until(condition: Any, deadline_s: float, what: str, logs: Any) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        if condition():
            return time.perf_counter() - started
        time.sleep(0.5)
    pytest.fail(f"{what} within {deadline_s} s; container log: {logs()[-2000:]}")


def test_the_pod_spec_runs_and_passes_the_kubelets_probes_over_https(
    pushed_image: str, store: tuple[Any, str], tmp_path: Path
) -> None:
    from thrifty.reach import endpoint_client
    from thrifty.rehearsal import kubelet_probe, metadata_server, pod_run_args

    s3, moto = store
    weights = tiny_onnx(tmp_path / "tiny.onnx")
    sha = s3.put_file(tmp_path / "tiny.onnx").sha256
    token, port = secrets.token_urlsafe(24), free_port()
    secret, pod, spec = _pod(pushed_image, sha, token, moto, port)
    files = {secret["metadata"]["name"]: {k: base64.b64decode(v) for k, v in secret["data"].items()}}
    name = f"thrifty-pod-{uuid.uuid4().hex[:8]}"
    podman("pull", "--tls-verify=false", pushed_image)
    with metadata_server() as imds:
        identity = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds, "AWS_DEFAULT_REGION": "us-east-1"}
        args = pod_run_args(pod, files, tmp_path / "volumes", identity)
        podman(*args[:2], "--name", name, *args[2:])
        try:
            (container,) = pod["containers"]

            def logs() -> str:
                return podman("logs", name, check=False).stderr

            _until(lambda: kubelet_probe(container, "startupProbe") == 200, 120, "startup probe passed", logs)
            assert kubelet_probe(container, "livenessProbe") == 200
            _until(lambda: kubelet_probe(container, "readinessProbe") == 200, 60, "ready", logs)
            x = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)
            body = {
                "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]
            }
            url = f"https://127.0.0.1:{port}/v2/models/tiny/infer"
            with endpoint_client(spec.model_dump()) as client:
                answer = client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 200, answer.text
                out = answer.json()["outputs"][0]
                np.testing.assert_allclose(
                    np.array(out["data"]).reshape(out["shape"]), x @ weights, rtol=1e-5, atol=1e-5
                )
                wrong = {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}
                assert client.post(url, json=body, headers=wrong).status_code in (401, 403)
            user = podman("exec", name, "id", "-u").stdout.strip()
            assert user == "10001", "the pod's securityContext user"
            key_line = files["tiny-tls"]["tls.key"].decode().splitlines()[1]
            assert token not in logs() and key_line not in podman("inspect", name).stdout, (
                "key only as a file"
            )
        finally:
            podman("rm", "-f", "-t", "2", name, check=False)
