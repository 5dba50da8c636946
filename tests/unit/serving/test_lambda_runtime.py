"""The runtime as Lambda runs it: ``python -m thrifty.container`` under a loopback Runtime API.

The process loads the model at init, answers function URL events through the Open Inference
Protocol server (token checked), and reports an init failure to ``/runtime/init/error``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.unit.serving.conftest import mlp_reference
from thrifty.container import allotted_cpus, platform_threads
from thrifty.lambda_rehearsal import RuntimeApi, url_event

TOKEN = "lambda-test-token"


@pytest.fixture
def runtime_api() -> Iterator[RuntimeApi]:
    api = RuntimeApi()
    yield api
    api.close()


def _start(api: RuntimeApi, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("THRIFTY_")} | env
    full |= {"AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}
    return subprocess.Popen([sys.executable, "-m", "thrifty.container"], env=full, stderr=subprocess.PIPE)


def test_the_runtime_answers_function_url_events_through_the_runtime_api(
    runtime_api: RuntimeApi, mlp_path: Path, tmp_path: Path
) -> None:
    from thrifty.artifacts.local import LocalStore

    sha = LocalStore(tmp_path / "store").put_file(mlp_path).sha256
    env = {"THRIFTY_MODEL_NAME": "mlp", "THRIFTY_ARTIFACT_STORE_URL": str(tmp_path / "store"),
           "THRIFTY_ARTIFACT_SHA256": sha, "THRIFTY_MODEL_DIR": str(tmp_path / "models"),
           "THRIFTY_API_TOKEN_SHA256": hashlib.sha256(TOKEN.encode()).hexdigest()}  # fmt: skip
    process = _start(runtime_api, env)
    try:
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        request = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
        kind, answer = runtime_api.invoke(url_event("/v2/models/mlp/infer", request, TOKEN))
        assert kind == "response" and answer["statusCode"] == 200, answer
        import json

        output = json.loads(answer["body"])["outputs"][0]
        np.testing.assert_allclose(
            np.array(output["data"]).reshape(2, 3), mlp_reference(mlp_path, x), rtol=1e-5
        )
        kind, denied = runtime_api.invoke(url_event("/v2/models/mlp/infer", request, "wrong-token"))
        assert kind == "response" and denied["statusCode"] == 401
    finally:
        process.kill()
        process.wait(timeout=10)


def test_an_init_failure_is_reported_to_the_runtime_api(runtime_api: RuntimeApi, tmp_path: Path) -> None:
    process = _start(runtime_api, {"THRIFTY_MODEL_NAME": "mlp"})
    kind, payload = runtime_api.invoke(url_event("/v2/health/ready", None, method="GET"))
    assert process.wait(timeout=60) == 2
    assert kind == "init_error" and payload["errorType"] == "ConfigError"
    assert "THRIFTY_ARTIFACT_STORE_URL" in payload["errorMessage"]


@pytest.mark.parametrize(
    ("env", "threads"),
    [
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}, 2),  # 2 × 1,769 MB
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}, 1),  # under one vCPU: still one thread
        ({"THRIFTY_CPU_LIMIT": "2"}, 2),  # Cloud Run / Container Apps limit
        ({"THRIFTY_CPU_LIMIT": "0.5"}, 1),
        ({"THRIFTY_THREADS": "3", "THRIFTY_CPU_LIMIT": "1"}, 3),  # set explicitly wins
    ],
)
def test_threads_follow_the_vcpus_the_platform_allots(
    env: dict[str, str], threads: int, tmp_path: Path
) -> None:
    (tmp_path / "cpu.max").write_text("400000 100000\n")  # the container may use 4 CPUs
    allotted = allotted_cpus(tmp_path)  # the quota, or fewer CPUs where this machine has fewer
    assert platform_threads(env, tmp_path) == (
        threads if "THRIFTY_THREADS" in env else min(threads, allotted)
    )


def test_threads_never_exceed_the_cgroup_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert platform_threads({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}, tmp_path) == 1
