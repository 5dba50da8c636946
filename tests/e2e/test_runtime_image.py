"""The serving-runtime image, for real: built with podman from the offline base, run as a container
that fetches a variant from moto's S3 (on loopback) by sha256 and serves it over the Open Inference
Protocol behind a bearer token it only knows by digest; pushed to a local registry and pulled back
by digest. The test set-up installs podman, runc, mmdebstrap and docker-registry itself
(.ci/podman.sh); the base image and the wheels are cached per machine, so a warm run is quick."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import podman, tiny_onnx

pytestmark = pytest.mark.slow


@pytest.fixture
def container() -> Iterator[list[str]]:
    """Names of containers the test starts; all removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        podman("rm", "-f", name, check=False)


def run_container(image: str, names: list[str], env: dict[str, str], *, detach: bool = True) -> str:
    name = f"thrifty-test-{uuid.uuid4().hex[:8]}"
    names.append(name)
    flags = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
    mode = ["-d"] if detach else []
    podman("run", *mode, "--name", name, "--network", "host", *flags, image, check=detach)
    return name


def wait_ready(url: str, name: str, deadline_s: float = 90.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2.0).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        state = podman("inspect", name, "--format", "{{.State.Status}}").stdout.strip()
        assert state == "running", podman("logs", name, check=False).stderr
        time.sleep(0.2)
    pytest.fail(f"container {name} not ready in {deadline_s} s: {podman('logs', name, check=False).stderr}")


def test_the_image_is_small_and_has_no_torch_or_prefect(runtime_image: Any) -> None:
    assert runtime_image.size_mb <= 400, f"image is {runtime_image.size_mb} MB"
    script = "import importlib.metadata as m; print(*(d.metadata['Name'] for d in m.distributions()))"
    listed = podman("run", "--rm", "--entrypoint", "python3", runtime_image.ref, "-c", script).stdout
    names = {name.lower() for name in listed.split()}
    assert {"onnxruntime", "tokenizers", "thrifty"} <= names
    assert not names & {"torch", "prefect", "transformers", "pydantic"}


def test_the_container_serves_a_variant_from_s3_behind_a_token(
    runtime_image: Any, store: tuple[Any, str], container: list[str], tmp_path: Path
) -> None:
    s3, endpoint = store
    weights = tiny_onnx(tmp_path / "tiny.onnx")
    sha = s3.put_file(tmp_path / "tiny.onnx").sha256
    token, port = secrets.token_urlsafe(24), free_port()
    name = run_container(
        runtime_image.ref,
        container,
        {
            "THRIFTY_MODEL_NAME": "tiny",
            "THRIFTY_ARTIFACT_STORE_URL": "s3://artifacts/blobs",
            "THRIFTY_ARTIFACT_SHA256": sha,
            "THRIFTY_S3_ENDPOINT_URL": endpoint,
            "THRIFTY_API_TOKEN_SHA256": hashlib.sha256(token.encode()).hexdigest(),
            "AWS_ACCESS_KEY_ID": "testing",  # moto's; on a cloud the instance profile answers
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "PORT": str(port),
        },
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, name)
    x = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
    infer = f"{url}/v2/models/tiny/infer"
    answer = httpx.post(infer, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
    assert answer.status_code == 200, answer.text
    out = answer.json()["outputs"][0]
    np.testing.assert_allclose(np.array(out["data"]).reshape(out["shape"]), x @ weights, rtol=1e-5, atol=1e-5)
    assert httpx.post(infer, json=body, timeout=10.0).status_code == 401
    wrong = httpx.post(infer, json=body, headers={"Authorization": "Bearer not-it"}, timeout=10.0)
    assert wrong.status_code == 401
    env = podman("inspect", name, "--format", "{{json .Config.Env}}").stdout
    assert token not in env, "the plaintext token reached the container"


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"THRIFTY_MODEL_NAME": "m"}, "lacks THRIFTY_ARTIFACT_STORE_URL, THRIFTY_ARTIFACT_SHA256"),
        (
            {
                "THRIFTY_MODEL_NAME": "m",
                "THRIFTY_ARTIFACT_STORE_URL": "s3://artifacts/blobs",
                "THRIFTY_ARTIFACT_SHA256": "ab" * 32,
            },
            "ab" * 6,
        ),
    ],
)
def test_bad_configuration_exits_with_the_cause_and_no_traceback(
    runtime_image: Any, store: tuple[Any, str], container: list[str], env: dict[str, str], said: str
) -> None:
    _, endpoint = store
    env = env | {"THRIFTY_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    name = run_container(runtime_image.ref, container, env, detach=False)
    state = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    logs = podman("logs", name, check=False)
    assert state == "2"
    assert said in logs.stderr and "Traceback" not in logs.stderr + logs.stdout


def test_push_to_a_registry_and_pull_back_by_digest(runtime_image: Any, registry: str) -> None:
    from thrifty.image import push_image

    pushed = push_image(runtime_image.ref, f"{registry}/thrifty", tls_verify=False)
    assert pushed.startswith(f"{registry}/thrifty/thrifty-runtime@sha256:")
    podman("pull", "--tls-verify=false", pushed)
    same = podman("image", "inspect", pushed, "--format", "{{.Id}}").stdout.strip()
    assert same == podman("image", "inspect", runtime_image.ref, "--format", "{{.Id}}").stdout.strip()
