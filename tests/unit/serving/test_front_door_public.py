"""The front door on a reachable address: HTTPS with its own pinned certificate, nothing anonymous.

The gateway (``run_gateway``, as the daemon runs it) serves its public listener on 127.0.0.2 — still
loopback, standing in for the address a VM reaches — next to the usual 127.0.0.1 one. A client
that trusts only the front door's certificate infers with the deployment's own token; the VM's
watcher posts a notice with the notice token after checking the certificate's fingerprint; a
wrong pin, a wrong token or no token is refused even though every peer here is loopback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.unit.serving.conftest import build_mlp
from thrifty.errors import ConfigError
from thrifty.serving.public import parse_listen

PUBLIC_HOST = "127.0.0.2"
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]}
ADMIN_TOKEN = "gateway-admin-token"


@pytest.mark.parametrize(
    ("value", "allowed", "expected"),
    [
        ("10.0.0.5:8471", False, ("10.0.0.5", 8471)),
        ("[fd00::5]:8471", False, ("fd00::5", 8471)),
        ("0.0.0.0:8471", True, ("0.0.0.0", 8471)),  # asked for explicitly
    ],
)
def test_a_listen_address_is_parsed(value: str, allowed: bool, expected: tuple[str, int]) -> None:
    assert parse_listen(value, all_interfaces=allowed) == expected


@pytest.mark.parametrize("value", ["0.0.0.0:8471", "[::]:8471"])
def test_every_interface_is_refused_unless_asked_for_with_the_reason(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_listen(value)
    assert "every interface" in refused.value.message
    assert "THRIFTY_FRONT_DOOR_LISTEN_ALL_INTERFACES=true" in (refused.value.hint or "")


@pytest.mark.parametrize("value", ["8471", "10.0.0.5", "10.0.0.5:http", ":8471", "10.0.0.5:70000"])
def test_a_listen_address_that_is_not_host_port_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        parse_listen(value)


def test_thrifty_up_refuses_every_interface_before_starting_anything(thrifty_home: Path) -> None:
    env = dict(os.environ, THRIFTY_FRONT_DOOR_LISTEN="0.0.0.0:8471", THRIFTY_GATEWAY_PORT=str(free_port()))
    thrifty = Path(sys.executable).parent / "thrifty"
    done = subprocess.run([str(thrifty), "up"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "every interface" in done.stderr
    assert not (thrifty_home / "run" / "gateway.pid").exists()


def _free_port_on(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _GatewayThread:
    """``run_gateway`` (both listeners) on its own event loop in a thread, stopped on exit."""

    def __init__(self, config: Any, remote: Any) -> None:
        self.config, self.remote = config, remote
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from thrifty import runtime
        from thrifty.serving.gateway import run_gateway

        self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
        await run_gateway(self.config, runtime.registry(), stop=self.stop, remote=self.remote)

    def __enter__(self) -> _GatewayThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(60)


def _remote_deployment(name: str, vm_url: str, home: Path) -> str:
    """A VM deployment (provider aws) whose replica is ``vm_url``; returns its token's digest."""
    from thrifty import runtime, tokens

    digest = tokens.issue(home, name)
    runtime.registry().upsert_deployment(
        name, provider="aws", region="us-east-1", state="running", replicas=1, endpoint_url=vm_url,
        spec={"name": name, "serving": {"token_sha256": digest}}, resources={"endpoints": [vm_url]},
    )  # fmt: skip
    return digest


@pytest.fixture
def front_door(thrifty_home: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The gateway with a public listener on 127.0.0.2, fronting one VM deployment ``vm-model``."""
    from thrifty import tls, tokens
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.gateway import GatewayConfig
    from thrifty.serving.public import PublicListener
    from thrifty.serving.remote import RemoteTargets
    from thrifty.serving.server import InferenceServer, ServerConfig

    mlp = build_mlp(tmp_path / "mlp.onnx")
    holder: dict[str, Any] = {"notices": []}

    def make_vm() -> Any:
        server = InferenceServer(ServerConfig(api_tokens=(f"sha256:{holder['digest']}",)))
        server.load("vm-model", mlp)
        return server.handle

    vm = BackgroundServer(make_vm)
    holder["digest"] = _remote_deployment("vm-model", vm.url, thrifty_home)
    _remote_deployment("other-model", vm.url, thrifty_home)
    public = PublicListener(PUBLIC_HOST, _free_port_on(PUBLIC_HOST), tls.front_door_cert(thrifty_home))
    config = GatewayConfig(
        port=free_port(), api_tokens=(ADMIN_TOKEN,), warm_pool_size=0, reconcile_interval_s=0.2, public=public
    )
    remote = RemoteTargets(
        provider_for=lambda provider, name: None,
        token_for=lambda name: tokens.token_for(thrifty_home, name),
        on_interruption=lambda name, notice: holder["notices"].append((name, notice)) or "in-process",
    )
    with vm, _GatewayThread(config, remote):
        holder |= {"public": public, "token": tokens.token_for(thrifty_home, "vm-model")}
        holder["client"] = httpx.Client(
            base_url=public.url, verify=tls.client_context(public.cert.cert_pem, public.sha256), timeout=30
        )
        _wait_served(holder["client"], holder["token"])
        yield holder
        holder["client"].close()


def _wait_served(client: httpx.Client, token: str) -> None:
    """Poll (generously: a busy machine) until the front door routes the deployment."""
    deadline, last = time.monotonic() + 60, "no answer"
    while time.monotonic() < deadline:
        try:
            answer = client.post("/v2/models/vm-model/infer", json=BODY, headers=_bearer(token))
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"the public listener never served vm-model: {last}")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
def test_the_public_listener_serves_https_with_the_pinned_certificate_and_no_anonymous_request(
    front_door: dict[str, Any],
) -> None:
    client, token = front_door["client"], front_door["token"]
    assert client.get("/v2/health/ready").status_code == 200  # open: a load balancer's probe
    answer = client.post("/v2/models/vm-model/infer", json=BODY, headers=_bearer(token))
    assert answer.status_code == 200 and answer.json()["outputs"][0]["shape"] == [1, 3]

    anonymous = client.post("/v2/models/vm-model/infer", json=BODY)  # from a loopback peer, still refused
    assert anonymous.status_code == 401 and "no anonymous request" in anonymous.json()["error"]
    assert client.post("/v2/models/vm-model/infer", json=BODY, headers=_bearer("guess")).status_code == 401
    # a deployment's token opens its own routes only
    assert client.post("/v2/models/other-model/infer", json=BODY, headers=_bearer(token)).status_code == 401
    assert client.get("/admin/status", headers=_bearer(token)).status_code == 401
    assert client.get("/v2/models/vm-model/ready").status_code == 401
    status = client.get("/admin/status", headers=_bearer(ADMIN_TOKEN))
    assert status.status_code == 200
    assert status.json()["public"]["tls_cert_sha256"] == front_door["public"].sha256


@pytest.mark.slow
def test_a_wrong_pin_and_plain_http_are_refused(front_door: dict[str, Any], tmp_path: Path) -> None:
    from thrifty import tls

    public = front_door["public"]
    impostor = tls.make_cert("front-door")  # same name, another key: only the fingerprint differs
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(
            f"{public.url}/v2/health/ready", verify=tls.client_context(impostor.cert_pem, impostor.sha256)
        )
    with pytest.raises(httpx.HTTPError):  # the public port speaks TLS only
        httpx.get(f"http://{PUBLIC_HOST}:{public.port}/v2/health/ready", timeout=5)
    with pytest.raises(Exception, match="not the pinned one"):
        tls.pinned_context(PUBLIC_HOST, public.port, impostor.sha256)


@pytest.mark.slow
def test_the_watcher_posts_its_notice_only_to_the_pinned_front_door(front_door: dict[str, Any]) -> None:
    from thrifty import tokens
    from thrifty.container import front_door_notifier

    public, notices = front_door["public"], front_door["notices"]
    notice_token = tokens.notice_token(front_door["token"], "vm-model")
    payload = {"deployment": "vm-model", "instance_id": "i-0abc", "cloud": "aws", "action": "terminate"}
    wrong = front_door_notifier(public.url, notice_token, "0" * 64)
    assert wrong is not None
    started = time.monotonic()
    wrong(payload)
    assert notices == [] and time.monotonic() - started < 30  # refused at once, not retried
    right = front_door_notifier(public.url, notice_token, public.sha256)
    assert right is not None
    right(payload)
    assert [(name, notice["instance_id"]) for name, notice in notices] == [("vm-model", "i-0abc")]


def test_the_vm_user_data_pins_this_front_doors_certificate(
    thrifty_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from thrifty import tls
    from thrifty.providers.base import DeploySpec, PriceModel
    from thrifty.providers.boot import boot_script
    from thrifty.providers.commands import _boot
    from thrifty.settings import get_settings

    monkeypatch.setenv("THRIFTY_FRONT_DOOR_URL", "https://10.0.0.5:8471")
    get_settings.cache_clear()
    try:
        boot = _boot(False, ["198.51.100.0/24"], vm=True)
    finally:
        get_settings.cache_clear()
    pin = tls.front_door_cert(thrifty_home).sha256
    assert boot.front_door_sha256 == pin
    spec = DeploySpec(
        name="spotty", model_name="m", variant_id=1, artifact_sha256="ab" * 32, region="us-east-1",
        instance_type="c7g.large", price_model=PriceModel.SPOT, replicas=1,
        serving={"token_sha256": "cd" * 32, "notice_token": "ef" * 32},
    )  # fmt: skip
    script = boot_script(spec, replace(boot, image="r/i@sha256:" + "0" * 64), cloud="aws")
    (watch,) = [line for line in script.splitlines() if " watch " in line]
    assert f"-e THRIFTY_NOTICE_TOKEN={'ef' * 32} -e THRIFTY_FRONT_DOOR_SHA256={pin} " in watch
