"""Signed webhooks to loopback receivers: one that verifies, one that is down, one that answers 500."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from thrifty import webhooks
from thrifty.webhooks import ReplayGuard, SignatureError, sign, verify

SECRET = "whsec_test_secret_0123456789"


class Receiver:
    """A loopback webhook receiver that checks signatures with ``thrifty.webhooks.verify``."""

    def __init__(self, fail_first: int = 0, always: int | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.calls = 0
        self.guard = ReplayGuard()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls += 1
                status = 200
                if always is not None or receiver.calls <= fail_first:
                    status = always or 500
                else:
                    try:
                        receiver.events.append(
                            verify(SECRET, body, self.headers.get("thrifty-signature"), guard=receiver.guard)
                        )
                    except SignatureError as exc:
                        receiver.refused.append(exc.message)
                        status = 400
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "RETRY_DELAYS_S", (0.05, 0.1))


@pytest.fixture
def registry(thrifty_home: Path) -> Any:
    from thrifty import runtime

    return runtime.registry()


def test_a_signed_event_reaches_the_receiver(registry: Any, receiver: Receiver) -> None:
    sub = webhooks.subscribe(registry, receiver.url, ["deployment.live"], SECRET)
    (delivery_id,) = webhooks.publish(
        "deployment.live", {"deployment": "minilm"}, registry=registry, wait=True
    )
    assert [e["data"] for e in receiver.events] == [{"deployment": "minilm"}]
    assert receiver.events[0]["type"] == "deployment.live"
    (logged,) = webhooks.deliveries(registry, sub.id)
    assert (logged.id, logged.state, logged.attempts, logged.last_status_code) == (
        delivery_id,
        "delivered",
        1,
        200,
    )
    assert webhooks.publish("anomaly", {"x": 1}, registry=registry, wait=True) == []  # not subscribed


def test_a_receiver_that_is_down_is_retried_then_marked_failed(registry: Any) -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"
    sub = webhooks.subscribe(registry, down, ["interruption"], SECRET)
    webhooks.publish("interruption", {"deployment": "a"}, registry=registry, wait=True)
    (logged,) = webhooks.deliveries(registry, sub.id)
    assert (logged.state, logged.attempts, logged.last_status_code) == ("failed", 3, None)
    assert "ConnectError" in (logged.last_error or "")


def test_a_500_is_retried_with_backoff_until_it_succeeds_or_gives_up(registry: Any) -> None:
    flaky, broken = Receiver(fail_first=2), Receiver(always=500)
    try:
        ok_sub = webhooks.subscribe(registry, flaky.url, ["plan.cheaper"], SECRET)
        bad_sub = webhooks.subscribe(registry, broken.url, ["plan.cheaper"], SECRET)
        started = time.monotonic()
        webhooks.publish("plan.cheaper", {"usd_saved_per_month": 12.5}, registry=registry, wait=True)
        assert time.monotonic() - started >= 0.15 * 2 * 0.9  # both waited 0.05 s + 0.1 s
        (ok,) = webhooks.deliveries(registry, ok_sub.id)
        (bad,) = webhooks.deliveries(registry, bad_sub.id)
        assert (ok.state, ok.attempts, flaky.calls, len(flaky.events)) == ("delivered", 3, 3, 1)
        assert (bad.state, bad.attempts, bad.last_status_code, broken.calls) == ("failed", 3, 500, 3)
    finally:
        flaky.close()
        broken.close()


def test_the_receiver_helper_refuses_replays_stale_and_forged_deliveries() -> None:
    body = json.dumps({"id": "e1", "type": "anomaly", "data": {}}).encode()
    now = int(time.time())
    header = sign(SECRET, body, now)
    guard = ReplayGuard()
    assert verify(SECRET, body, header, guard=guard)["id"] == "e1"
    with pytest.raises(SignatureError, match="replay"):
        verify(SECRET, body, header, guard=guard)
    with pytest.raises(SignatureError, match="away from now"):
        verify(SECRET, body, sign(SECRET, body, now - 3600), guard=guard)
    with pytest.raises(SignatureError, match="does not match"):
        verify("whsec_another_secret_000", body, sign(SECRET, body, now + 1), guard=guard)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, body + b" ", sign(SECRET, body, now + 2), guard=guard)
    with pytest.raises(SignatureError, match="no valid"):
        verify(SECRET, body, None)


def test_a_replayed_delivery_is_refused_by_the_shipped_receiver(registry: Any, receiver: Receiver) -> None:
    body = json.dumps({"id": "e2", "type": "anomaly", "data": {}}).encode()
    headers = {"thrifty-signature": sign(SECRET, body, int(time.time())), "content-type": "application/json"}
    with httpx.Client(trust_env=False) as http:
        assert http.post(receiver.url, content=body, headers=headers).status_code == 200
        assert http.post(receiver.url, content=body, headers=headers).status_code == 400
    assert receiver.refused == ["webhook signature seen before: a replay"]


def test_registry_events_are_published(registry: Any, receiver: Receiver) -> None:
    sub = webhooks.subscribe(registry, receiver.url, ["deployment.live", "deployment.hibernated"], SECRET)
    registry.upsert_deployment("minilm", provider="local", state="running", replicas=1)
    registry.add_event("minilm", "live", "smoke test passed")
    registry.add_event("minilm", "scale", "1 → 2 replica(s)")  # no webhook type: not published
    registry.add_event("minilm", "hibernate", "idle")
    deadline = time.monotonic() + 10
    while len(receiver.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(e["type"] for e in receiver.events) == ["deployment.hibernated", "deployment.live"]
    assert {e["data"]["deployment"] for e in receiver.events} == {"minilm"}
    assert len(webhooks.deliveries(registry, sub.id)) == 2


def test_webhooks_through_the_api(http: httpx.Client, receiver: Receiver) -> None:
    bad = http.post("/webhooks", json={"url": receiver.url, "event_types": ["deployment.exploded"]})
    assert bad.status_code == 400 and "deployment.live" in bad.json()["fix"]
    made = http.post("/webhooks", json={"url": receiver.url, "event_types": ["anomaly"], "secret": SECRET})
    assert made.status_code == 201 and made.json()["secret"] == SECRET
    assert "secret" not in http.get("/webhooks").json()[0]
    from thrifty import runtime

    webhooks.publish("anomaly", {"series": "cost"}, registry=runtime.registry(), wait=True)
    log = http.get(f"/webhooks/{made.json()['id']}/deliveries").json()
    assert [(d["event_type"], d["state"]) for d in log] == [("anomaly", "delivered")]
    assert http.delete(f"/webhooks/{made.json()['id']}").status_code == 200
    assert http.get("/webhooks").json() == []


def wait_for_events(receiver: Receiver, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
    """The events the receiver verified, once ``count`` arrived (publish delivers in a thread)."""
    deadline = time.monotonic() + timeout_s
    while len(receiver.events) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(receiver.events)


def test_an_interruption_notice_to_the_front_door_reaches_the_webhook(
    registry: Any, receiver: Receiver, thrifty_home: Path
) -> None:
    """A VM's watcher posts its notice to the gateway (real HTTP, the deployment's notice token);
    the gateway records the ``interruption`` event, which is published as webhook ``interruption``."""
    import asyncio

    from thrifty import tokens
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.gateway import Gateway, GatewayConfig
    from thrifty.serving.remote import RemoteTargets

    token = "serving-token-of-spotty"
    registry.upsert_deployment("spotty", provider="aws", region="us-east-1", state="running", replicas=1)
    webhooks.subscribe(registry, receiver.url, ["interruption"], SECRET)
    handed: list[dict[str, Any]] = []
    remote = RemoteTargets(
        provider_for=lambda provider, name: None,
        token_for=lambda name: token if name == "spotty" else None,
        on_interruption=lambda name, notice: handed.append(notice) or "in-process",
    )
    holder: dict[str, Any] = {}

    def make() -> Any:
        holder["gw"] = Gateway(GatewayConfig(warm_pool_size=0), registry, remote=remote)
        asyncio.get_running_loop().create_task(holder["gw"].start())
        return holder["gw"].handle

    async def close() -> None:
        await holder["gw"].close()

    notice = {"deployment": "spotty", "instance_id": "i-0abc", "cloud": "aws", "action": "terminate",
              "at": "2026-03-12T12:02:00Z"}  # fmt: skip
    with BackgroundServer(make, on_stop=close) as url:
        answer = httpx.post(f"{url}/v2/deployments/spotty/interruption", json=notice, timeout=30,
                            headers={"authorization": f"Bearer {tokens.notice_token(token, 'spotty')}"})  # fmt: skip
    assert answer.status_code == 202 and handed == [notice]
    (event,) = wait_for_events(receiver, 1)
    assert event["type"] == "interruption" and event["data"]["deployment"] == "spotty"
    assert event["data"]["kind"] == "interruption" and event["data"]["details"]["instance_id"] == "i-0abc"
