"""Bytes through a real gateway end up in the request log and, priced, in the spend ledger.

An in-process gateway wakes a real ONNX replica; a raw-socket client sends requests of known size
(batches of 1..N rows, so every response has its own size) and counts every byte it sent and got.
The request log must hold exactly those sizes, and the ledger's transfer dollars must equal the
hand computation: bytes out / 2^30 × aws's $/GiB (the account's free allowance is used up by an
earlier deployment, so every byte is billed). A deployment on the same plan that served nothing
pays $0 transfer.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from thrifty import read
from thrifty.artifacts.transfer import EGRESS_FREE_GIB_PER_MONTH, EGRESS_USD_PER_GB
from thrifty.monitor.egress import month_start
from thrifty.monitor.rollup import HOUR_S, floor_time, roll_up
from thrifty.registry import Registry, fleet
from thrifty.serving.app import BackgroundServer
from thrifty.serving.gateway import Gateway, GatewayConfig

GIB = 2**30
ROWS = range(1, 7)  # six requests: batches of 1..6 rows


def _plan(registry: Registry) -> int:
    artifact = registry.upsert_artifact("c" * 64, 1000, "file:///c")
    version, _ = registry.add_model_version(
        "mlp", sha256="c" * 64, artifact=artifact, format="onnx", size_bytes=1000, source_path="/m"
    )
    chosen = {
        "variant": "original",
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": "m5.large",
        "price_model": "on_demand",
        "usd_per_hour": 0.096,
    }
    return registry.add_plan(model_version_id=version.id, chosen=chosen, record={"chosen": chosen}).id


def _deployments(registry: Registry, mlp_path: Path, now: datetime) -> None:
    plan_id = _plan(registry)
    spec: dict[str, Any] = {"runtime": {"model_path": str(mlp_path)}, "serving": {}}
    for name in ("mlp", "idle", "bulk"):
        registry.upsert_deployment(
            name, provider="local", state="hibernated", replicas=0, spec=spec, plan_id=plan_id
        )
    # earlier this month another deployment of the account used up aws's free allowance
    gone = max(month_start(now), now - timedelta(hours=1))
    registry.log_requests_bulk(
        [
            {
                "model_name": "bulk",
                "at": gone,
                "latency_ms": 5.0,
                "cold": False,
                "status_code": 200,
                "request_bytes": 300,
                "response_bytes": int(EGRESS_FREE_GIB_PER_MONTH["aws"] * GIB),
            }
        ]
    )


def _exchange(sock: socket.socket, message: bytes) -> bytes:
    """Send one request on a keep-alive connection; every byte of the answer."""
    sock.sendall(message)
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    found = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert found is not None, head
    while len(body) < int(found.group(1)):
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _request(rows: int) -> bytes:
    body = json.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": [0.5] * (rows * 4)}]}
    ).encode()
    head = f"POST /v2/models/mlp/infer HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


@pytest.fixture
def served(registry: Registry) -> Iterator[Callable[[], str]]:
    holder: dict[str, Gateway] = {}

    def make() -> Any:
        holder["gw"] = Gateway(GatewayConfig(reconcile_interval_s=60, warm_pool_size=0), registry)
        asyncio.get_running_loop().create_task(holder["gw"].start())  # its log flushes every second
        return holder["gw"].handle

    async def close() -> None:
        await holder["gw"].close()

    with BackgroundServer(make, on_stop=close) as url:
        yield lambda: url


def _wait_for_log(registry: Registry, since: datetime, count: int) -> list[Any]:
    deadline = time.monotonic() + 60  # the gateway flushes its log every second; CI is busy
    while time.monotonic() < deadline:
        rows = registry.requests_since("mlp", since)
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    raise AssertionError(
        f"the request log holds {len(registry.requests_since('mlp', since))} of {count} rows"
    )


def test_bytes_through_the_gateway_are_logged_and_billed_as_egress(
    registry: Registry, mlp_path: Path, served: Callable[[], str]
) -> None:
    started = datetime.now(UTC)
    _deployments(registry, mlp_path, started)
    port = int(served().rsplit(":", 1)[1])
    sent, got = [], []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for rows in ROWS:
            message = _request(rows)
            answer = _exchange(sock, message)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            sent.append(len(message))
            got.append(len(answer))
    assert len(set(got)) == len(ROWS)  # every answer has its own size

    logged = _wait_for_log(registry, started - timedelta(seconds=1), len(ROWS))
    assert [(r.request_bytes, r.response_bytes) for r in logged] == list(zip(sent, got, strict=True))

    now = datetime.now(UTC)
    by_hand = sum(got) / GIB * EGRESS_USD_PER_GB["aws"]  # the allowance is gone: every byte billed
    views = {v.deployment: v for v in read.costs(registry, now=now).deployments}
    if month_start(now) == month_start(started):  # a month that turned mid-test starts a new allowance
        assert views["mlp"].egress_usd == pytest.approx(by_hand, rel=1e-9)
        assert views["mlp"].transfer_usd == pytest.approx(by_hand, rel=1e-9)
    assert views["mlp"].egress_gib == pytest.approx(sum(got) / GIB)
    assert (views["idle"].transfer_usd, views["idle"].egress_gib) == (0.0, 0.0)

    # the monitor rolls the hour up: the ledger's transfer row says the same
    hour = floor_time(logged[0].at, HOUR_S)
    roll_up(registry, now=hour + timedelta(hours=1, minutes=1))
    rows = [e for e in fleet.spend(registry, "mlp", hour, hour + timedelta(hours=1)) if e.kind == "transfer"]
    in_hour = [r for r in logged if floor_time(r.at, HOUR_S) == hour]
    assert [int(e.quantity) for e in rows] == [sum(r.response_bytes for r in in_hour)]
    assert rows[0].usd == pytest.approx(rows[0].quantity / GIB * EGRESS_USD_PER_GB["aws"], rel=1e-9)
    assert not [
        e for e in fleet.spend(registry, "idle", hour, hour + timedelta(hours=1)) if e.kind == "transfer"
    ]
