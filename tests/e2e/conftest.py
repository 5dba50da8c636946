"""Fixtures of the end-to-end tests that run real images: the serving-runtime image (built once per
session, cached per machine), moto's S3 as the artifact store, a local registry, a tiny ONNX model."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def runtime_image() -> Any:
    subprocess.run(["bash", str(ROOT / ".ci" / "podman.sh")], check=True, timeout=600)
    from thrifty.image import build_image

    return build_image(ROOT)


@pytest.fixture
def store(moto_server: str, tmp_path: Path) -> tuple[Any, str]:
    import boto3

    from thrifty.artifacts.s3 import S3Store

    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket="artifacts")
    return S3Store(
        "s3://artifacts/blobs", endpoint_url=moto_server, cache_dir=tmp_path / "cache"
    ), moto_server


def tiny_onnx(path: Path) -> np.ndarray:
    """y = x @ W: one MatMul, input x [batch, 4] float32, output y [batch, 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(3).standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return weights


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from thrifty.image import podman_env

    return subprocess.run(
        ["podman", "--runtime", "runc", *args], env=podman_env(), capture_output=True, text=True, check=check
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
        f"{tmp_path / 'registry'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def pushed_image(runtime_image: Any, registry: str) -> str:
    """The runtime image pushed to the local registry; its reference by digest."""
    from thrifty.image import push_image

    return push_image(runtime_image.ref, f"{registry}/thrifty", tls_verify=False)
