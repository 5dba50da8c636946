"""The front door fronts cloud deployments: AWS on moto's HTTP server, the VM played by a real
inference server on loopback (``reach`` maps every instance address to it, as the rehearsal does).

Two AWS deployments go out through the ``deploy-to-target`` task (each gets its own token). Steady
traffic goes through the gateway to one of them; the ``hibernation-sweep`` flow then keeps the busy
one warm and hibernates the idle one (its instance is terminated on moto). A request to the
hibernated one is held, wakes it through the provider, and is answered: never an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.flows.test_spot_rebalance import aws_target_ref, moto, variant  # noqa: F401 (fixtures)
from tests.unit.serving.conftest import build_mlp, mlp_reference

pytestmark = pytest.mark.slow


def _spec(variant_ref: tuple[int, str], name: str) -> Any:
    from thrifty.providers.base import DeploySpec, PriceModel

    return DeploySpec(
        name=name,
        model_name="minilm",
        variant_id=variant_ref[0],
        artifact_sha256=variant_ref[1],
        region="us-east-1",
        instance_type="c7g.large",
        price_model=PriceModel.ON_DEMAND,
        replicas=1,
    )


def _body(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}


@pytest.fixture
def deployed(aws_target_ref: str, variant: tuple[int, str]) -> list[str]:  # noqa: F811
    from tasks.providers import choice_for_block, deploy_to_target

    names = ["busy", "idle"]
    for name in names:
        result = deploy_to_target.fn(choice_for_block(aws_target_ref), [_spec(variant, name)])
        assert (result.state, result.replicas_ready) == ("running", 1)
    return names


@pytest.fixture
def stand_in(deployed: list[str], thrifty_home: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The "VM": thrifty's inference server with both models, accepting only their tokens' digests."""
    from thrifty import tokens
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.server import InferenceServer, ServerConfig

    mlp = build_mlp(tmp_path / "mlp.onnx")
    digests = tuple(f"sha256:{tokens.digest(tokens.token_for(thrifty_home, n))}" for n in deployed)

    def make() -> Any:
        server = InferenceServer(ServerConfig(api_tokens=digests))
        for name in deployed:
            server.load(name, mlp)
        return server.handle

    with BackgroundServer(make) as url:
        yield url, mlp


@pytest.fixture
def front_door(
    stand_in: tuple[str, Path],
    aws_target_ref: str,  # noqa: F811
    thrifty_home: Path,
) -> Iterator[Any]:
    from tasks.providers import build_provider
    from thrifty import runtime, tokens
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.gateway import Gateway, GatewayConfig
    from thrifty.serving.remote import RemoteTargets

    remote = RemoteTargets(
        provider_for=lambda provider, name: build_provider(aws_target_ref),
        token_for=lambda name: tokens.token_for(thrifty_home, name),
        reach=lambda url: stand_in[0],
        poll_s=0.05,
    )
    holder: dict[str, Gateway] = {}

    def make() -> Any:
        import asyncio

        config = GatewayConfig(warm_pool_size=0, reconcile_interval_s=0.2, log_flush_interval_s=0.2)
        holder["gw"] = Gateway(config, runtime.registry(), remote=remote)
        asyncio.get_running_loop().create_task(holder["gw"].start())
        return holder["gw"].handle

    async def close() -> None:
        await holder["gw"].close()

    with BackgroundServer(make, on_stop=close) as url:
        yield url, holder


def _wait_for(check: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_the_sweep_keeps_a_busy_cloud_deployment_and_hibernates_an_idle_one(
    front_door: Any,
    stand_in: tuple[str, Path],
    aws_target_ref: str,  # noqa: F811
) -> None:
    from blocks.hibernation import HibernationPolicy
    from flows.hibernation_sweep import HibernationSweepParams, hibernation_sweep
    from tasks.providers import build_provider
    from thrifty import runtime

    url, _ = front_door
    rows = np.random.default_rng(5).standard_normal((20, 4)).astype(np.float32)
    with httpx.Client(timeout=30) as client:
        answers = []
        for row in rows:  # steady traffic, through the front door only
            answers.append(client.post(f"{url}/v2/models/busy/infer", json=_body(row[None])))
            time.sleep(0.05)
    assert [a.status_code for a in answers] == [200] * 20, answers[-1].text
    got = np.array([a.json()["outputs"][0]["data"] for a in answers], dtype=np.float32)
    np.testing.assert_allclose(got, mlp_reference(stand_in[1], rows), rtol=1e-5)
    registry = runtime.registry()
    _wait_for(lambda: len(registry.requests_since("busy", _an_hour_ago())) == 20)

    HibernationPolicy(min_warm_min=0.0).save("front-door", overwrite=True)
    params = HibernationSweepParams(policy_block="front-door", targets={"aws": aws_target_ref})
    result = hibernation_sweep(params)

    assert (result["busy"]["do"], result["busy"]["requests_seen"]) == ("none", 20)
    assert result["busy"]["action"] == "keep-warm"
    assert (result["idle"]["do"], result["idle"]["requests_seen"]) == ("hibernate", 0)
    aws = build_provider(aws_target_ref)
    assert (aws.status("busy").state, aws.status("idle").state) == ("running", "hibernated")
    assert [r for r in aws.replicas("idle") if r.live] == []
    assert registry.get_deployment("idle").state == "hibernated"


def test_a_request_to_a_hibernated_cloud_deployment_wakes_it_and_is_answered(
    front_door: Any,
    stand_in: tuple[str, Path],
    aws_target_ref: str,  # noqa: F811
) -> None:
    from tasks.providers import build_provider
    from thrifty import runtime

    url, holder = front_door
    aws = build_provider(aws_target_ref)
    aws.hibernate("idle")
    registry = runtime.registry()
    registry.upsert_deployment("idle", state="hibernated", replicas=0, resources={"endpoints": []})
    gateway = holder["gw"]
    _wait_for(lambda: "idle" in gateway.models and not gateway.models["idle"].replicas)

    x = np.random.default_rng(6).standard_normal((1, 4)).astype(np.float32)
    answer = httpx.post(f"{url}/v2/models/idle/infer", json=_body(x), timeout=60)

    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(
        answer.json()["outputs"][0]["data"], mlp_reference(stand_in[1], x)[0], rtol=1e-5
    )
    assert aws.status("idle").state == "running"
    _wait_for(lambda: registry.get_deployment("idle").state == "running")
    (wake,) = [e for e in registry.list_events("idle") if e.kind == "wake"]
    assert wake.details["running_to_ready_s"] >= 0.0 and "aws woke it" in wake.reason
    assert registry.get_deployment("idle").resources["endpoints"] == aws.status("idle").details["endpoints"]
    _wait_for(lambda: any(r.cold for r in registry.requests_since("idle", _an_hour_ago())))
    unauthorized = httpx.post(f"{stand_in[0]}/v2/models/idle/infer", json=_body(x), timeout=10)
    assert unauthorized.status_code == 401, "the VM only answers the deployment's token"


def _an_hour_ago() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(hours=1)


def test_the_front_door_sends_notices_to_prefect_when_an_api_is_configured(
    thrifty_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PREFECT_API_URL set, a notice becomes the thrifty.spot.interruption event (whose
    automation runs spot-rebalance); without it, the rebalance runs inside the front door."""
    from tasks.providers import emit_interruption_event
    from thrifty.providers.front_door import interruption_handler
    from thrifty.serving.remote import RemoteTargets
    from thrifty.settings import get_settings

    remote = RemoteTargets(provider_for=lambda provider, name: None)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert interruption_handler(get_settings(), remote).emit is None
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    handler = interruption_handler(get_settings(), remote)
    assert handler.emit is emit_interruption_event
    sent: list[Any] = []
    handler.emit = sent.append  # what reached the emitter (sending it is the spot-rebalance tests' part)
    via = handler("spotty", {"deployment": "spotty", "instance_id": "i-1", "cloud": "aws", "at": None})
    assert via == "prefect" and handler.threads == []
    assert (sent[0].deployment, sent[0].instance_id, sent[0].cloud) == ("spotty", "i-1", "aws")
