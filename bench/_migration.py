"""Requests lost while a migration moves a deployment between two targets, through the front door.

Shared by ``bench/lifecycle.py`` (its migration row) and tests/unit/lifecycle/test_migration_traffic.py.

    load process ──50 req/s──▶ front door (Gateway + RemoteTargets) ──▶ "VM" of the source target
                                         │  after the move               └▶ "VM" of the destination
    Lifecycle.migrate(action) ── start r2 beside on the destination (moto), verify it with an
    inference, point the registry at it, drain ``drain_s``, delete r1 (its "VM" then stops)

The targets are real providers (AWS on moto's server, two regions); each instance's replica is
thrifty's inference server on loopback (``reach`` maps the source instance's address to one "VM",
every other address to the other), accepting only the deployment token's digest. The load runs in
its own process, open loop (each request at its time, answered or not), until told to stop, so
the migration's own work here cannot slow the sender. A request is lost if it is not answered 200.

Measured: lost requests; the migration's time (call → old revision deleted); the switch: from the
registry naming the new revision to the front door's first request to the new "VM", and until the
last request the old one answered (both must stay under ``drain_s``, or requests would reach a
deleted VM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]}


@dataclass
class RecordingVM:
    """A "VM": the inference server serving ``name`` behind the token's digest, noting when it
    answered each inference (``time.time()``)."""

    model: Path
    name: str
    digest: str
    answered_at: list[float] = field(default_factory=list)
    server: Any = None

    def __enter__(self) -> str:
        from thrifty.serving.app import BackgroundServer
        from thrifty.serving.server import InferenceServer, ServerConfig

        def make() -> Any:
            inference = InferenceServer(ServerConfig(api_tokens=(f"sha256:{self.digest}",)))
            inference.load(self.name, self.model)

            def handle(request: Any) -> Any:
                if request.path.endswith("/infer"):
                    self.answered_at.append(time.time())
                return inference.handle(request)

            return handle

        self.server = BackgroundServer(make)
        return str(self.server.__enter__())

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)
            self.server = None


def front_door(remote: Any, reconcile_interval_s: float) -> Any:
    """The gateway fronting the clouds, served on loopback from its own thread."""
    from thrifty import runtime
    from thrifty.serving.app import BackgroundServer
    from thrifty.serving.gateway import Gateway, GatewayConfig

    holder: dict[str, Any] = {}

    def make() -> Any:
        config = GatewayConfig(warm_pool_size=0, reconcile_interval_s=reconcile_interval_s)
        holder["gw"] = Gateway(config, runtime.registry(), remote=remote)
        asyncio.get_running_loop().create_task(holder["gw"].start())
        return holder["gw"].handle

    async def close() -> None:
        await holder["gw"].close()

    return BackgroundServer(make, on_stop=close)


def http_verifier(reach: Callable[[str], str], token: str) -> Any:
    """A ``Verify``: one inference at the staged revision's endpoint with the deployment's token."""
    import httpx

    from thrifty.errors import ServingError

    def verify(spec: Any, status: Any) -> str:
        url = f"{reach(status.endpoint_url or '')}/v2/models/{spec.served_name}/infer"
        answer = httpx.post(url, json=BODY, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if answer.status_code != 200:
            raise ServingError(f"inference at {url} answered {answer.status_code}", hint=answer.text[:200])
        return f"inference answered {answer.json()['outputs'][0]['shape']}"

    return verify


@dataclass
class Drill:
    """One migration of ``name`` from target ``source`` to ``destination`` under steady load."""

    registry: Any
    providers: Mapping[str, Any]
    home: Path
    model: Path
    name: str = "mover"
    source: str = "aws"
    destination: str = "thrifty-aws-target/west"
    rps: float = 50.0
    drain_s: float = 5.0
    reconcile_interval_s: float = 1.0
    before_s: float = 5.0
    after_s: float = 3.0
    #: the load sends at least this many requests (it goes on after the migration until then)
    min_requests: int = 0

    def deploy(self, spec: Any) -> Any:
        """The first revision on ``source``, recorded as the deploy-model flow records it."""
        from thrifty.lifecycle import record_first_revision
        from thrifty.providers.base import record_deployment

        status = self.providers[self.source].deploy(spec)
        record_deployment(self.registry, status, spec, {"target": self.source, **status.details})
        record_first_revision(self.registry, spec, status.provider, self.source, state="live")
        return status

    def run(self, spec: Any, offer: Any) -> dict[str, Any]:
        """Deploy ``spec``, start the load, migrate to ``offer`` (a rebalance ``migrate`` action),
        keep the load ``after_s`` more, stop; the figures (see the module)."""
        from thrifty import tokens

        digest = tokens.issue(self.home, self.name)
        spec = spec.with_changes(name=self.name, serving={**spec.serving, "token_sha256": digest})
        old_endpoint = self.deploy(spec).endpoint_url
        token = tokens.token_for(self.home, self.name)
        old_vm, new_vm = (
            RecordingVM(self.model, self.name, digest),
            RecordingVM(self.model, self.name, digest),
        )
        with new_vm as new_url:
            old_url = old_vm.__enter__()
            try:
                reach = lambda url: old_url if url == old_endpoint else new_url  # noqa: E731
                return self._under_load(reach, token, offer, old_vm, new_vm)
            finally:
                old_vm.stop()

    def _under_load(self, reach: Any, token: str, offer: Any, old_vm: Any, new_vm: Any) -> dict[str, Any]:
        from thrifty.serving.remote import RemoteTargets

        remote = RemoteTargets(
            provider_for=lambda provider, name: self.providers[provider],
            token_for=lambda name: token if name == self.name else None,
            reach=reach,
        )
        with front_door(remote, self.reconcile_interval_s) as url:
            infer = f"{url}/v2/models/{self.name}/infer"
            wait_answered(infer)
            load = start_load(infer, self.rps, self.min_requests)
            time.sleep(self.before_s)
            outcome = self._migrate(reach, token, offer)
            old_vm.stop()  # the old revision's instance is deleted: its "VM" is gone
            time.sleep(self.after_s)
            summary = stop_load(load, self.min_requests / self.rps)
        moved_at = self.registry.get_deployment(self.name).updated_at.timestamp()
        after = [t for t in new_vm.answered_at if t >= moved_at]
        return summary | {
            "outcome": outcome,
            "migration_s": outcome.seconds,
            "switch_s": (min(after) - moved_at) if after else None,
            "old_last_s": max(old_vm.answered_at) - moved_at if old_vm.answered_at else None,
            "old_answered": len(old_vm.answered_at),
            "new_answered": len(after),
            "drain_s": self.drain_s,
            "reconcile_interval_s": self.reconcile_interval_s,
        }

    def _migrate(self, reach: Any, token: str, offer: Any) -> Any:
        from thrifty.lifecycle import Lifecycle
        from thrifty.policies.rebalance import Action

        lifecycle = Lifecycle(
            self.registry, self.providers.__getitem__, http_verifier(reach, token), drain_s=self.drain_s
        )
        action = Action(
            kind="migrate", deployment=self.name, reason="cheaper elsewhere (drill)",
            usd_saved_per_month=10.0, drain_budget_s=int(self.drain_s), target=offer,
        )  # fmt: skip
        return lifecycle.migrate(action, {offer.provider: self.destination})


def wait_answered(url: str, timeout_s: float = 60.0) -> None:
    """Poll (generously: a busy machine) until the front door answers the deployment."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            answered = httpx.post(url, json=BODY, timeout=10).status_code == 200
        except httpx.HTTPError:
            answered = False  # not listening yet
        if answered:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the front door did not answer {url} within {timeout_s:g} s")


# -- the load process ---------------------------------------------------------------------------------
def start_load(url: str, rps: float, min_requests: int = 0) -> subprocess.Popen[str]:
    """The load process, once it sends (its first line says so)."""
    here = str(Path(__file__).resolve())
    argv = [sys.executable, here, "--load", url, "--rps", str(rps), "--min-requests", str(min_requests)]
    load = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert load.stdout is not None
    load.stdout.readline()
    return load


def stop_load(load: subprocess.Popen[str], at_least_s: float = 0.0) -> dict[str, Any]:
    """Tell the load to stop sending (once it sent its ``min_requests``); its summary once every
    request sent was answered."""
    out, _ = load.communicate("stop\n", timeout=at_least_s + 120)
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


async def _open_loop(url: str, rps: float, stop: threading.Event, min_requests: int) -> dict[str, Any]:
    import httpx

    statuses: list[int] = []
    latencies_ms: list[float] = []

    async def one(client: httpx.AsyncClient) -> None:
        sent = time.perf_counter()
        try:
            status = (await client.post(url, json=BODY)).status_code
        except httpx.HTTPError:  # refused, reset or no answer in 30 s: lost
            status = 0
        statuses.append(status)
        latencies_ms.append((time.perf_counter() - sent) * 1000)

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        pending, start, sent = [], time.perf_counter(), 0
        print("sending", flush=True)
        while not (stop.is_set() and sent >= min_requests):
            pending.append(asyncio.ensure_future(one(client)))
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / rps - time.perf_counter()))
        await asyncio.gather(*pending)
    return _summary(statuses, latencies_ms)


def _summary(statuses: list[int], latencies_ms: list[float]) -> dict[str, Any]:
    import numpy as np

    ms = np.array(latencies_ms or [0.0])
    return {
        "requests": len(statuses),
        "lost": sum(s != 200 for s in statuses),
        "statuses": sorted({str(s) for s in statuses}),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def _load_main(url: str, rps: float, min_requests: int) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print(json.dumps(asyncio.run(_open_loop(url, rps, stop, min_requests))), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", required=True)
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument("--min-requests", type=int, default=0)
    args = parser.parse_args()
    _load_main(args.load, args.rps, args.min_requests)
