"""A spot interruption reaches the control plane through the front door, end to end on loopback.

AWS on moto; each "VM" is thrifty's inference server on its own port (``reach`` maps the old
instance's address to one, every other address to the other); the IMDSv2 stand-in of the rehearsal
serves the notice; the real watcher (``python -m thrifty.container watch``, a subprocess) posts it
with the deployment's notice token; the front door records it and runs the rebalance in-process:
a replacement is launched, verified over HTTP, traffic switched, the old instance drained and
terminated — before the 2-minute notice ends, with 50 req/s through the front door and none lost.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.serving.conftest import build_mlp

pytestmark = pytest.mark.slow
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]}
NOTICE_WINDOW_S = 120.0  # AWS: the notice comes two minutes before the reclaim


def _vm(mlp: Path, name: str, digest: str) -> Any:
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.server import InferenceServer, ServerConfig

    def make() -> Any:
        server = InferenceServer(ServerConfig(api_tokens=(f"sha256:{digest}",)))
        server.load(name, mlp)
        return server.handle

    return BackgroundServer(make)


def _gateway(remote: Any) -> tuple[Any, dict[str, Any]]:
    from thrifty import runtime
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.gateway import Gateway, GatewayConfig

    holder: dict[str, Any] = {}

    def make() -> Any:
        config = GatewayConfig(warm_pool_size=0, reconcile_interval_s=0.2, log_flush_interval_s=0.5)
        holder["gw"] = Gateway(config, runtime.registry(), remote=remote)
        asyncio.get_running_loop().create_task(holder["gw"].start())
        return holder["gw"].handle

    async def close() -> None:
        await holder["gw"].close()

    return BackgroundServer(make, on_stop=close), holder


async def _steady(url: str, rps: float, stop: Callable[[], bool], statuses: list[int]) -> None:
    async def one(client: httpx.AsyncClient) -> None:
        try:
            statuses.append((await client.post(f"{url}/v2/models/spotty/infer", json=BODY)).status_code)
        except httpx.HTTPError:
            statuses.append(0)

    async with httpx.AsyncClient(timeout=60) as client:
        pending = set()
        while not stop():
            pending.add(asyncio.ensure_future(one(client)))
            await asyncio.sleep(1.0 / rps)
        await asyncio.gather(*pending)


@pytest.fixture
def spot_deployment(aws: Any, make_spec: Any, thrifty_home: Path) -> Iterator[tuple[Any, Any]]:
    from thrifty import runtime, tokens
    from thrifty.providers.base import spec_to_dict

    digest = tokens.issue(thrifty_home, "spotty")
    spec = make_spec("spotty", replicas=1, serving={"token_sha256": digest})
    status = aws.deploy(spec)
    resources = {"endpoints": status.details["endpoints"], "ids": [r.id for r in status.resources]}
    runtime.registry().upsert_deployment(
        "spotty", provider="aws", region="us-east-1", state=status.state, replicas=1,
        endpoint_url=status.endpoint_url, spec=spec_to_dict(spec), resources=resources,
    )  # fmt: skip
    yield status, digest
    aws.delete("spotty")


def test_a_watched_notice_replaces_the_instance_before_the_window_ends_and_loses_no_request(
    aws: Any, spot_deployment: tuple[Any, str], thrifty_home: Path, tmp_path: Path
) -> None:
    from thrifty import runtime, tokens
    from thrifty.providers.front_door import InterruptionHandler, http_health
    from thrifty.rehearsal import Instance, metadata_server
    from thrifty.serving.remote import RemoteTargets

    _, digest = spot_deployment
    (old,) = [r for r in aws.replicas("spotty") if r.live]
    old_host = old.endpoint_url.split("//")[1]
    mlp = build_mlp(tmp_path / "mlp.onnx")
    registry = runtime.registry()
    with ExitStack() as stack:
        old_vm = _vm(mlp, "spotty", digest)
        old_url, new_url = old_vm.__enter__(), stack.enter_context(_vm(mlp, "spotty", digest))
        reach = lambda url: old_url if old_host in url else new_url  # noqa: E731
        remote = RemoteTargets(
            provider_for=lambda provider, name: aws,
            token_for=lambda name: tokens.token_for(thrifty_home, name),
            reach=reach,
        )
        handler = InterruptionHandler(
            registry, remote.provider_for, http_health(reach), drain_wait_s=2.0, health_poll_s=0.2
        )
        remote.on_interruption = handler
        server, _ = _gateway(remote)
        front = stack.enter_context(server)
        instance = Instance(instance_id=old.id)
        imds = stack.enter_context(metadata_server(instance))
        statuses: list[int] = []
        done: list[float] = []

        async def scenario() -> None:
            traffic = asyncio.ensure_future(_steady(front, 50.0, lambda: bool(done), statuses))
            await asyncio.sleep(2.0)
            notice_token = tokens.notice_token(tokens.token_for(thrifty_home, "spotty"), "spotty")
            noticed = _notice_and_watch(instance, imds, front, notice_token)
            started = time.monotonic()
            while not handler.threads or handler.threads[0].is_alive():
                assert time.monotonic() - started < NOTICE_WINDOW_S, "no replacement within the notice"
                await asyncio.sleep(0.1)
            replaced_s = time.monotonic() - started
            async with httpx.AsyncClient() as client:  # the gateway's own bearer tokens do not apply
                forged = await client.post(
                    f"{front}/v2/deployments/spotty/interruption",
                    json={"deployment": "spotty", "instance_id": "i-other"},
                    headers={"Authorization": f"Bearer {digest}"},
                )
            assert forged.status_code == 401, "the digest in the user data is no notice token"
            old_vm.__exit__(None, None, None)  # the reclaim: the old VM is gone
            await asyncio.sleep(3.0)
            done.append(replaced_s)
            await traffic
            assert noticed.wait(timeout=30) == 0, noticed.stdout.read() if noticed.stdout else ""

        asyncio.run(scenario())

    assert len(statuses) > 200 and [s for s in statuses if s != 200] == [], "a request was lost"
    assert done[0] < NOTICE_WINDOW_S
    (interruption,) = [e for e in registry.list_events("spotty") if e.kind == "interruption"]
    assert old.id in interruption.reason
    (replace,) = [e for e in registry.list_events("spotty") if e.kind == "rebalance.replace"]
    assert replace.details["status"] == "done" and replace.details["old_replica_id"] == old.id
    live = [r for r in aws.replicas("spotty") if r.live]
    assert [r.id for r in live] == [replace.details["new_replica_id"]] and old.id not in {r.id for r in live}
    assert registry.get_deployment("spotty").resources["ids"] == [live[0].id]


def _notice_and_watch(instance: Any, imds: str, front: str, notice_token: str) -> subprocess.Popen[str]:
    """The instance gets its notice; the real watcher (a separate process) picks it up and posts it."""
    from datetime import UTC, datetime, timedelta

    reclaim_at = datetime.now(UTC) + timedelta(seconds=NOTICE_WINDOW_S)
    instance.spot_action = {"action": "terminate", "time": reclaim_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    env = dict(os.environ, THRIFTY_NOTICE_TOKEN=notice_token)
    return subprocess.Popen(
        [sys.executable, "-m", "thrifty.container", "watch", "--deployment", "spotty", "--cloud", "aws",
         "--metadata-url", imds, "--notify-url", front, "--poll-s", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("front_door_url", [None, "https://door.example.com"])
def test_the_spot_watcher_is_told_the_front_door_and_its_notice_token(
    make_spec: Any, front_door_url: str | None
) -> None:
    from thrifty.providers.boot import BootConfig, boot_script

    spec = make_spec("spotty", serving={"token_sha256": "cd" * 32, "notice_token": "ef" * 32})
    boot = BootConfig(
        artifact_store_url="s3://a/b", image="r/i@sha256:" + "0" * 64, front_door_url=front_door_url
    )
    (watch,) = [line for line in boot_script(spec, boot, cloud="aws").splitlines() if " watch " in line]
    if front_door_url is None:  # no front door: the notice lands in the watcher's log only
        assert "THRIFTY_NOTICE_TOKEN" not in watch
    else:
        assert f"-e THRIFTY_FRONT_DOOR_URL={front_door_url} -e THRIFTY_NOTICE_TOKEN={'ef' * 32} " in watch


def test_a_busy_vm_deployment_scales_out_through_its_provider(
    aws: Any, make_spec: Any, thrifty_home: Path, tmp_path: Path
) -> None:
    from thrifty import runtime, tokens
    from thrifty.providers.base import spec_to_dict
    from thrifty.serving.remote import RemoteTargets

    digest = tokens.issue(thrifty_home, "busy")
    autoscale = {"max_replicas": 2, "target_outstanding_per_replica": 1.0, "scale_in_cooldown_s": 600.0}
    spec = make_spec("busy", replicas=1, serving={"token_sha256": digest, "autoscale": autoscale})
    status = aws.deploy(spec)
    runtime.registry().upsert_deployment(
        "busy", provider="aws", region="us-east-1", state="running", replicas=1,
        endpoint_url=status.endpoint_url, spec=spec_to_dict(spec), resources={"endpoints": status.details["endpoints"]},
    )  # fmt: skip
    slow = build_mlp(tmp_path / "slow.onnx", in_features=1024, hidden=4096)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1024], "data": [0.5] * 1024}]}
    with _vm(slow, "busy", digest) as vm_url:
        remote = RemoteTargets(
            provider_for=lambda provider, name: aws,
            token_for=lambda name: tokens.token_for(thrifty_home, name),
            reach=lambda url: vm_url,
        )
        server, _ = _gateway(remote)
        with server as front:

            async def load() -> list[int]:
                async with httpx.AsyncClient(timeout=60) as client:
                    until = time.monotonic() + 4.0

                    async def one() -> list[int]:
                        out = []
                        while time.monotonic() < until:
                            out.append(
                                (await client.post(f"{front}/v2/models/busy/infer", json=body)).status_code
                            )
                        return out

                    return [s for chunk in await asyncio.gather(*(one() for _ in range(8))) for s in chunk]

            statuses = asyncio.run(load())
            deadline = time.monotonic() + 30
            while runtime.registry().get_deployment("busy").replicas < 2:
                assert time.monotonic() < deadline, "the registry never saw the scale-out"
                time.sleep(0.1)
    assert set(statuses) == {200}
    assert len([r for r in aws.replicas("busy") if r.live]) == 2  # launched through the provider
    assert aws.status("busy").replicas_desired == 2
    (event,) = [e for e in runtime.registry().list_events("busy") if e.kind == "autoscale"]
    assert event.reason.startswith("1 → 2 replicas")
    assert len(runtime.registry().get_deployment("busy").resources["endpoints"]) == 2
