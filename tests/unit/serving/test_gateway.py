"""The gateway daemon and the local provider, end to end over loopback HTTP.

One daemon (supervisor → gateway → replica workers) serves the whole module; the tests run in
file order and share it: deploy, wake from zero under 50 concurrent requests, a replica killed
mid-load, a crashed gateway, then ``down``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import free_port
from tests.unit.serving.conftest import mlp_reference

pytestmark = pytest.mark.slow


class Env:
    def __init__(self, home: Path, port: int, mlp_path: Path) -> None:
        self.home, self.port, self.mlp_path = home, port, mlp_path
        self.url = f"http://127.0.0.1:{port}"
        self.infer_url = f"{self.url}/v2/models/mlp/infer"

    def provider(self) -> object:
        from thrifty.providers.local import LocalProvider

        return LocalProvider()

    def admin(self) -> dict[str, object]:
        return httpx.get(f"{self.url}/admin/status").json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, mlp_path: Path) -> Iterator[Env]:
    from thrifty import runtime
    from thrifty.serving import daemon
    from thrifty.settings import get_settings

    home = tmp_path_factory.mktemp("gateway-home")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THRIFTY_HOME", str(home))
        mp.setenv("THRIFTY_GATEWAY_PORT", str(port))
        for var in ("THRIFTY_DATABASE_URL", "THRIFTY_ARTIFACT_STORE_URL", "THRIFTY_API_TOKENS"):
            mp.delenv(var, raising=False)
        runtime.reset()
        try:
            yield Env(home, port, mlp_path)
        finally:
            daemon.stop_daemon(get_settings())
            runtime.reset()


def _body(x: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}


def _events(kind: str) -> int:
    from thrifty import runtime

    return sum(e.kind == kind for e in runtime.registry().list_events("mlp"))


def test_deploy_twice_is_one_deployment_served_through_the_gateway(env: Env) -> None:
    import tritonclient.http as triton

    from thrifty import runtime
    from thrifty.providers.local import spec_for_path

    provider = env.provider()
    spec = spec_for_path(env.mlp_path, "mlp", runtime.store())
    first = provider.deploy(spec)  # type: ignore[attr-defined]
    second = provider.deploy(spec)  # type: ignore[attr-defined]
    assert (first.state, first.replicas_ready) == ("running", 1)
    assert (second.state, second.replicas_ready) == ("running", 1)
    assert [d.name for d in runtime.registry().list_deployments("local")] == ["mlp"]
    assert _events("deploy") == 1

    client = triton.InferenceServerClient(f"127.0.0.1:{env.port}")
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    tensor = triton.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer("mlp", [tensor])
    np.testing.assert_allclose(result.as_numpy("y"), mlp_reference(env.mlp_path, x), rtol=1e-5)
    assert client.get_model_metadata("mlp")["outputs"][0]["name"] == "y"
    client.close()


def test_fifty_requests_to_a_hibernated_model_all_succeed_with_one_wake(env: Env) -> None:
    provider = env.provider()
    hibernated = provider.hibernate("mlp")  # type: ignore[attr-defined]
    assert (hibernated.state, hibernated.replicas_ready) == ("hibernated", 0)
    wakes_before = _events("wake")
    rows = np.random.default_rng(4).standard_normal((50, 4)).astype(np.float32)

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as client:
            return await asyncio.gather(*(client.post(env.infer_url, json=_body(r[None])) for r in rows))

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 50
    got = np.array([r.json()["outputs"][0]["data"] for r in responses], dtype=np.float32)
    np.testing.assert_allclose(got, mlp_reference(env.mlp_path, rows), rtol=1e-5)
    _wait_for(lambda: _events("wake") > wakes_before)  # the wake event is written off the request path
    time.sleep(0.3)
    assert _events("wake") == wakes_before + 1
    metrics = httpx.get(f"{env.url}/metrics").text
    assert 'thrifty_gateway_cold_starts_total{model="mlp"} 1.0' in metrics
    assert provider.status("mlp").state == "running"  # type: ignore[attr-defined]


def test_request_log_and_status_report_traffic(env: Env) -> None:
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from thrifty import runtime
    from thrifty.cli import app

    time.sleep(1.2)  # one flush interval
    rows = runtime.registry().requests_since("mlp", datetime(2000, 1, 1, tzinfo=UTC))
    assert len(rows) >= 51 and sum(r.cold for r in rows) >= 1
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"requests": ' in result.output and '"state": "running"' in result.output


def test_killing_a_replica_mid_load_loses_no_request(env: Env) -> None:
    replicas = env.admin()["models"]["mlp"]["replicas"]  # type: ignore[index]
    assert len(replicas) == 1
    victim = int(replicas[0]["pid"])
    x = np.ones((1, 4), dtype=np.float32)
    statuses: list[int] = []

    async def load() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            sem = asyncio.Semaphore(16)

            async def one() -> None:
                async with sem:
                    statuses.append((await client.post(env.infer_url, json=_body(x))).status_code)

            await asyncio.gather(*(one() for _ in range(400)))

    runner = threading.Thread(target=lambda: asyncio.run(load()))
    runner.start()
    while len(statuses) < 60:
        time.sleep(0.005)
    os.kill(victim, signal.SIGKILL)
    runner.join(60)
    assert len(statuses) == 400
    assert set(statuses) == {200}
    _wait_for(lambda: _events("replica_lost") >= 1)
    assert _events("replica_lost") >= 1
    new = env.admin()["models"]["mlp"]["replicas"]  # type: ignore[index]
    assert new and int(new[0]["pid"]) != victim


def test_scale_and_delete_are_idempotent(env: Env, tmp_path: Path) -> None:
    from thrifty import runtime
    from thrifty.providers.local import spec_for_path

    provider = env.provider()
    provider.deploy(spec_for_path(env.mlp_path, "extra", runtime.store()))  # type: ignore[attr-defined]
    scaled = provider.scale("extra", 2)  # type: ignore[attr-defined]
    assert (scaled.replicas_desired, scaled.replicas_ready) == (2, 2)
    assert len(set(scaled.details["ports"])) == 2
    assert provider.scale("extra", 2).replicas_ready == 2  # type: ignore[attr-defined]
    assert sum(e.kind == "scale" for e in runtime.registry().list_events("extra")) == 1
    managed = provider.list_managed()  # type: ignore[attr-defined]
    assert {m.kind for m in managed} == {"gateway", "replica"}
    assert sum(m.deployment_name == "extra" for m in managed) == 2
    provider.delete("extra")  # type: ignore[attr-defined]
    provider.delete("extra")  # type: ignore[attr-defined]
    assert runtime.registry().find_deployment("extra") is None
    assert "extra" not in env.admin()["models"]  # type: ignore[operator]


def test_local_provider_declares_what_it_cannot_do() -> None:
    from thrifty.errors import UnsupportedFeatureError
    from thrifty.providers.base import Feature, provider_class, require

    cls = provider_class("local")
    with pytest.raises(UnsupportedFeatureError, match="local machine has no spot market"):
        require(cls, Feature.SPOT)
    require(cls, Feature.SCALE_TO_ZERO)  # supported: hibernate / wake


def test_a_crashed_gateway_restarts_from_the_registry(env: Env) -> None:
    old_pid = int(env.admin()["pid"])  # type: ignore[call-overload]
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        try:
            status = env.admin()
            if int(status["pid"]) != old_pid:  # type: ignore[call-overload]
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    assert status is not None and int(status["pid"]) != old_pid  # type: ignore[call-overload]
    response = httpx.post(env.infer_url, json=_body(np.ones((1, 4), dtype=np.float32)), timeout=30)
    assert response.status_code == 200


def test_down_answers_in_flight_requests_then_stops_everything(env: Env) -> None:
    from thrifty import runtime
    from thrifty.providers.local import spec_for_path
    from thrifty.serving import daemon
    from thrifty.settings import get_settings

    # a 1.5 s batching delay keeps requests in flight while `down` runs
    serving = {"max_queue_delay_ms": 1500, "max_batch_size": 64}
    env.provider().deploy(spec_for_path(env.mlp_path, "slow", runtime.store(), serving=serving))  # type: ignore[attr-defined]
    models = env.admin()["models"]
    replica_pids = [int(r["pid"]) for m in models.values() for r in m["replicas"]]  # type: ignore[attr-defined]
    statuses: list[int] = []

    async def fire() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            body = _body(np.ones((1, 4), dtype=np.float32))
            calls = [client.post(f"{env.url}/v2/models/slow/infer", json=body) for _ in range(8)]
            statuses.extend(r.status_code for r in await asyncio.gather(*calls))

    sender = threading.Thread(target=lambda: asyncio.run(fire()))
    sender.start()

    def in_flight() -> int:
        replicas = env.admin()["models"]["slow"]["replicas"]  # type: ignore[index]
        return sum(int(r["outstanding"]) for r in replicas)

    # all 8 held by the replica's batching delay (a fixed sleep lost this race on a busy machine)
    assert _wait_for(lambda: in_flight() == 8), in_flight()
    settings = get_settings()
    assert daemon.stop_daemon(settings) is True
    sender.join(30)
    assert statuses == [200] * 8
    assert daemon.daemon_pid(settings) is None and not daemon.pid_file(settings).exists()
    for pid in replica_pids:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
