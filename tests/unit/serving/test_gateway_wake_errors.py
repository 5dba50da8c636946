"""A wake that cannot finish gets a clear 504 (never a 503), from an in-process gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from thrifty.registry import Registry
from thrifty.serving.app import BackgroundServer
from thrifty.serving.gateway import Gateway, GatewayConfig

BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


@pytest.fixture
def gateway_registry(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry.from_url(f"sqlite:///{tmp_path / 'registry.db'}")
    yield registry
    registry.engine.dispose()


def _deploy_row(registry: Registry, name: str, model_path: Path, state: str = "hibernated") -> None:
    spec: dict[str, Any] = {"runtime": {"model_path": str(model_path)}, "serving": {}}
    registry.upsert_deployment(name, provider="local", state=state, replicas=0, spec=spec)


def _gateway(registry: Registry, **config: Any) -> BackgroundServer:
    holder: dict[str, Gateway] = {}

    def make() -> Any:
        holder["gw"] = Gateway(GatewayConfig(reconcile_interval_s=60, **config), registry)
        return holder["gw"].handle

    async def close() -> None:
        await holder["gw"].close()

    return BackgroundServer(make, on_stop=close)


def test_wake_timeout_gives_504_naming_the_model(gateway_registry: Registry, mlp_path: Path) -> None:
    _deploy_row(gateway_registry, "mlp", mlp_path)
    with _gateway(gateway_registry, wake_timeout_s=0.05) as url:
        response = httpx.post(f"{url}/v2/models/mlp/infer", json=BODY, timeout=30)
    assert response.status_code == 504
    assert response.json()["error"] == "model 'mlp' did not wake within 0.05 s; see the gateway log"


def test_a_model_that_cannot_load_gives_504_with_the_reason(
    gateway_registry: Registry, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    _deploy_row(gateway_registry, "broken", broken)
    with _gateway(gateway_registry, wake_timeout_s=30) as url:
        response = httpx.post(f"{url}/v2/models/broken/infer", json=BODY, timeout=60)
        unknown = httpx.post(f"{url}/v2/models/nope/infer", json=BODY, timeout=30)
    assert response.status_code == 504
    assert response.json()["error"].startswith(
        "model 'broken' could not be woken: replica of 'broken' failed to load"
    )
    assert unknown.status_code == 404 and "no deployment named 'nope'" in unknown.json()["error"]
