"""Every worker process the gateway starts is accounted for, however hibernate, wake and requests
interleave (issue 18 item 4: a replica leaked when a hibernate raced a wake).

The storm runs against the real daemon (supervisor → gateway → replica workers) and checks the
gateway's children in /proc against what it reports; the race itself is then replayed step by step
against an in-process gateway, with a cold worker start so the window is wide.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (zombies excluded), from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            found.add(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def refuses(port: int) -> bool:
    """True when a connection to the port is refused at once (nothing listens there)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


@pytest.fixture
def daemon_home(tmp_path: Path) -> Iterator[str]:
    from thrifty import runtime
    from thrifty.serving import daemon
    from thrifty.settings import get_settings

    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THRIFTY_HOME", str(tmp_path / "home"))
        mp.setenv("THRIFTY_GATEWAY_PORT", str(port))
        for var in ("THRIFTY_DATABASE_URL", "THRIFTY_ARTIFACT_STORE_URL", "THRIFTY_API_TOKENS"):
            mp.delenv(var, raising=False)
        runtime.reset()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            daemon.stop_daemon(get_settings())
            runtime.reset()


def _storm(url: str, seconds: float) -> dict[Any, int]:
    """Hibernate, wake, scale and requests from seven threads at once; the status codes seen."""
    from thrifty.providers.local import LocalProvider

    until = time.monotonic() + seconds
    seen: dict[Any, int] = {}
    rng = random.Random(18)

    def actor(kind: str) -> None:
        provider = LocalProvider(start_gateway=False, wait_ready_s=0.2)
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < until:
                if kind == "hibernate":
                    provider.hibernate("mlp")
                elif kind == "wake":
                    provider.wake("mlp")
                elif kind == "scale":
                    provider.scale("mlp", rng.choice([0, 1, 2]))
                else:
                    code = client.post(f"{url}/v2/models/mlp/infer", json=BODY).status_code
                    seen[code] = seen.get(code, 0) + 1
                time.sleep(rng.random() * 0.1)

    kinds = ["hibernate", "hibernate", "wake", "scale", "request", "request", "request"]
    threads = [threading.Thread(target=actor, args=(kind,)) for kind in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return seen


def _settled(url: str, replicas: int) -> Callable[[], bool]:
    """Nothing starting or stopping: the gateway's children are its replicas and one warm spare."""

    def check() -> bool:
        state, kids = _accounted(url)
        model = state["models"]["mlp"]
        spares = state["warm_pool"].get("spares", [None])  # started and waiting
        busy = model.get("starting") or model.get("retiring") or len(spares) != 1
        live = {r["pid"] for r in model["replicas"]}
        return not busy and len(live) == replicas and live < kids and len(kids) == replicas + 1

    return check


def _accounted(url: str) -> tuple[dict[str, Any], set[int]]:
    state = httpx.get(f"{url}/admin/status").json()
    return state, children(int(state["pid"]))


def test_a_storm_of_hibernate_wake_and_requests_leaves_exactly_the_expected_workers(
    daemon_home: str, mlp_path: Path
) -> None:
    from thrifty import runtime
    from thrifty.providers.local import LocalProvider, spec_for_path

    url = daemon_home
    LocalProvider().deploy(spec_for_path(mlp_path, "mlp", runtime.store()))
    seen = _storm(url, seconds=8.0)
    assert set(seen) == {200}, seen  # held while waking, answered: never an error

    LocalProvider(start_gateway=False).hibernate("mlp")  # the last word: zero replicas
    assert wait_for(_settled(url, 0)), _accounted(url)
    time.sleep(1.5)  # one more reconcile: nothing wakes back up behind our back
    state, kids = _accounted(url)
    row = runtime.registry().get_deployment("mlp")
    assert (row.state, row.replicas) == ("hibernated", 0)
    assert state["models"]["mlp"]["replicas"] == [] and len(kids) == 1
    spare = state["warm_pool"]["spares"][0]
    assert kids == {spare["pid"]} == {w["pid"] for w in state["workers"]}
    assert refuses(spare["port"])  # a warm spare never leaves a connection unanswered
    from thrifty import read
    from thrifty.settings import get_settings

    shown = read.local_status(runtime.registry(), get_settings()).gateway.workers  # `thrifty status`
    assert [(w["pid"], w["role"]) for w in shown] == [(spare["pid"], "spare")]

    assert httpx.post(f"{url}/v2/models/mlp/infer", json=BODY, timeout=60).status_code == 200
    assert wait_for(_settled(url, 1)), _accounted(url)
    state, kids = _accounted(url)
    replica = state["models"]["mlp"]["replicas"][0]
    assert kids == {replica["pid"], state["warm_pool"]["spares"][0]["pid"]}
    assert kids == {w["pid"] for w in state["workers"]}


# -- the race, step by step, in process ---------------------------------------------------------
def test_a_replica_that_finishes_starting_after_a_hibernate_answers_its_waiters_then_stops(
    tmp_path: Path, mlp_path: Path
) -> None:
    from thrifty.registry import Registry
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.gateway import Gateway, GatewayConfig

    registry = Registry.from_url(f"sqlite:///{tmp_path / 'registry.db'}")
    spec = {"runtime": {"model_path": str(mlp_path)}, "serving": {}}
    registry.upsert_deployment("mlp", provider="local", state="hibernated", replicas=0, spec=spec)
    holder: dict[str, Gateway] = {}

    def make() -> Any:  # no warm pool: the worker starts cold (≈ 1 s), a wide window for the race
        holder["gw"] = Gateway(GatewayConfig(reconcile_interval_s=60, warm_pool_size=0), registry)
        return holder["gw"].handle

    async def close() -> None:
        await holder["gw"].close()

    def wake_events() -> int:
        return sum(e.kind == "wake" for e in registry.list_events("mlp"))

    responses: list[httpx.Response] = []
    try:
        with BackgroundServer(make, on_stop=close) as url:
            sender = threading.Thread(
                target=lambda: responses.append(
                    httpx.post(f"{url}/v2/models/mlp/infer", json=BODY, timeout=60)
                )
            )
            sender.start()
            assert wait_for(lambda: wake_events() == 1, 10)  # the wake is in the registry first …
            gateway = holder["gw"]
            assert gateway.models["mlp"].starting == 1  # … while its replica is still starting
            registry.upsert_deployment("mlp", state="hibernated", replicas=0)  # then a hibernate
            registry.add_event("mlp", "hibernate", "test")
            httpx.post(f"{url}/admin/reconcile", timeout=30)
            sender.join(60)
            assert [r.status_code for r in responses] == [200]  # the held request is answered
            assert wait_for(lambda: not gateway.describe()["workers"], 15)
            assert gateway.models["mlp"].replicas == [] and gateway.models["mlp"].desired == 0
            assert not {p for p in children(os.getpid()) if _is_worker(p)}
    finally:
        registry.engine.dispose()
    row = registry.get_deployment("mlp")
    assert (row.state, row.replicas) == ("hibernated", 0)


def _is_worker(pid: int) -> bool:
    try:
        return b"thrifty.serving.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_a_gateway_that_closes_mid_start_leaves_no_worker(tmp_path: Path, mlp_path: Path) -> None:
    from thrifty.registry import Registry
    from thrifty.serving.gateway import Gateway, GatewayConfig

    registry = Registry.from_url(f"sqlite:///{tmp_path / 'registry.db'}")
    spec = {"runtime": {"model_path": str(mlp_path)}, "serving": {}}
    registry.upsert_deployment("mlp", provider="local", state="running", replicas=2, spec=spec)

    async def scenario() -> set[int]:
        gateway = Gateway(GatewayConfig(reconcile_interval_s=60, warm_pool_size=1), registry)
        await gateway.start()  # a spare and two replicas starting
        deadline = time.monotonic() + 30
        while not gateway.models["mlp"].replicas and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # close while the second replica may still be starting
        started = {w.pid for w in gateway.pool.workers}
        await gateway.close()
        return started

    from thrifty.serving.http import run

    try:
        started = run(scenario())
    finally:
        registry.engine.dispose()
    assert started  # workers were running when the gateway closed …
    assert not {p for p in children(os.getpid()) if _is_worker(p)}  # … and none is left
