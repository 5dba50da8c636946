"""The inference server over real HTTP: tritonclient and httpx against an MLP built in the test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.unit.serving.conftest import mlp_reference
from thrifty.serving.app import BackgroundServer
from thrifty.serving.runner import RunnerConfig
from thrifty.serving.server import InferenceServer, ServerConfig

MAX_BODY_BYTES = 64 * 1024


def _server(mlp_path: Path, **config: object) -> BackgroundServer:
    def make() -> object:
        server = InferenceServer(ServerConfig(max_body_bytes=MAX_BODY_BYTES, **config))  # type: ignore[arg-type]
        server.load("mlp", mlp_path)
        return server.handle

    return BackgroundServer(make, max_body_bytes=MAX_BODY_BYTES)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server_url(mlp_path: Path) -> Iterator[str]:
    with _server(mlp_path) as url:
        yield url


def _body(data: list[float], shape: list[int], datatype: str = "FP32", name: str = "x") -> dict[str, object]:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


def test_tritonclient_infers_binary_and_json(server_url: str, mlp_path: Path) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server_url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mlp")
    meta = client.get_model_metadata("mlp")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    expected = mlp_reference(mlp_path, x)
    for binary in (True, False):
        tensor = triton.InferInput("x", [3, 4], "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        result = client.infer("mlp", [tensor], outputs=[triton.InferRequestedOutput("y", binary_data=binary)])
        np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-5)
    client.close()


def test_wrong_shape_names_tensor_and_expected_shape(server_url: str) -> None:
    response = httpx.post(f"{server_url}/v2/models/mlp/infer", json=_body([1.0] * 6, [2, 3]))
    assert response.status_code == 400
    assert response.json()["error"] == "input 'x' has shape [2, 3]; expected [-1, 4] (-1 = any size)"


def test_wrong_dtype_names_tensor_and_expected_type(server_url: str) -> None:
    response = httpx.post(f"{server_url}/v2/models/mlp/infer", json=_body([1, 2, 3, 4], [1, 4], "INT64"))
    assert response.status_code == 400
    assert "input 'x' has datatype INT64; expected FP32 with shape [-1, 4]" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_body([1.0] * 4, [1, 4], name="z"), "unknown input 'z'"),
        ({"inputs": []}, "missing input 'x'"),
        (_body([1.0] * 3, [1, 4]), "has 3 values but shape [1, 4] needs 4"),
    ],
)
def test_bad_inputs_get_400(server_url: str, body: dict[str, object], fragment: str) -> None:
    response = httpx.post(f"{server_url}/v2/models/mlp/infer", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_bad_json_and_unknown_model(server_url: str) -> None:
    response = httpx.post(f"{server_url}/v2/models/mlp/infer", content=b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = httpx.get(f"{server_url}/v2/models/nope")
    assert response.status_code == 404 and "'nope'" in response.json()["error"]


def test_oversize_body_gets_413_before_it_is_read(server_url: str) -> None:
    data = [0.5] * (MAX_BODY_BYTES // 4 * 2)
    response = httpx.post(f"{server_url}/v2/models/mlp/infer", json=_body(data, [len(data) // 4, 4]))
    assert response.status_code == 413
    assert f"exceeds the limit of {MAX_BODY_BYTES} bytes" in response.json()["error"]


def test_bearer_tokens(mlp_path: Path) -> None:
    body = _body([1.0, 2.0, 3.0, 4.0], [1, 4])
    with _server(mlp_path, api_tokens=("s3cret",)) as url:
        missing = httpx.post(f"{url}/v2/models/mlp/infer", json=body)
        wrong = httpx.post(f"{url}/v2/models/mlp/infer", json=body, headers={"authorization": "Bearer nope"})
        good = httpx.post(f"{url}/v2/models/mlp/infer", json=body, headers={"authorization": "Bearer s3cret"})
        health = httpx.get(f"{url}/v2/health/live")
    assert missing.status_code == 401 and "missing bearer token" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid bearer token"
    assert good.status_code == 200 and health.status_code == 200


def test_without_tokens_only_loopback_clients_are_served() -> None:
    from thrifty.serving import auth
    from thrifty.serving.http import Request

    remote = Request("POST", "/", "/", "", {}, b"", "10.1.2.3")
    denied = auth.check(remote, ())
    assert denied is not None and denied.status == 403 and b"THRIFTY_API_TOKENS" in denied.body
    assert auth.check(Request("POST", "/", "/", "", {}, b"", "127.0.0.1"), ()) is None
    assert auth.check(Request("POST", "/", "/", "", {}, b"", "::1"), ()) is None


def test_concurrent_requests_are_batched_and_answered_each_their_own(mlp_path: Path) -> None:
    rows = np.random.default_rng(2).standard_normal((64, 4)).astype(np.float32)
    expected = mlp_reference(mlp_path, rows)
    # a 5 ms queue delay makes batching certain even on a quiet machine
    with _server(mlp_path, runner=RunnerConfig(max_batch_size=16, max_queue_delay_ms=5)) as url:

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url) as client:
                calls = [client.post("/v2/models/mlp/infer", json=_body(r.tolist(), [1, 4])) for r in rows]
                return await asyncio.gather(*calls)

        responses = asyncio.run(fire())
        metrics = httpx.get(f"{url}/metrics").text
    got = np.array([r.json()["outputs"][0]["data"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    count = _metric(metrics, 'thrifty_batch_size_count{model="mlp"}')
    assert 4 <= count < 64  # 64 requests ran in fewer calls (at most 16 rows each)
    assert _metric(metrics, 'thrifty_requests_total{code="200",model="mlp"}') == 64
    assert 'thrifty_queue_seconds_bucket{le="0.01",model="mlp"}' in metrics


def _metric(text: str, key: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(key))
    return float(line.rsplit(" ", 1)[1])
