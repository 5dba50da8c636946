"""The gateway (activator): one port for every model, replicas behind it, wake on demand.

    client ──▶ gateway :8470 ──▶ replica of model A (least outstanding requests)
                    │        └─▶ replica of model A
                    └──────────▶ (model B hibernated: hold the request, wake a replica, forward)

* Routing: ``/v2/models/{name}/...`` goes to the replica of deployment ``name`` with the fewest
  requests in flight. The gateway never answers 503: a model with zero replicas is woken (one
  wake per model, however many requests are waiting) and the requests are answered once it is
  ready; if it is not ready within ``wake_timeout_s`` the answer is a 504 that says so.
* Failures: a request whose replica dies is retried on another replica, or after a re-wake.
* Desired state lives in the registry (the local provider writes it); ``reconcile`` reads it every
  ``reconcile_interval_s`` and on ``POST /admin/reconcile``, so a restarted gateway rebuilds its
  replicas from the registry. A wake on request writes ``running`` to the registry as it starts,
  so whichever of a wake and a ``hibernate`` came last wins: a replica that finishes starting
  when its deployment no longer wants it answers the requests that waited for it, then stops.
* Updates are blue-green inside the gateway: when a deployment's stored spec changes (a new
  revision), its current replicas become *stale*: they keep answering while replicas of the new
  spec load, and are drained and stopped once as many new replicas as desired are live. No request
  is refused during the swap (``thrifty.lifecycle`` verifies the revision before it gets here).
* Every worker process is tracked from its spawn (``WarmPool.workers``) and listed by
  ``/admin/status``; one that belongs to no deployment any more is stopped at the next reconcile.
* Every request is recorded (time, model, latency, cold/warm, status, request and response bytes as
  HTTP messages) into the registry's request log in batches from a background task — never on the
  request's path. The response bytes are what the spend ledger prices as internet egress.
* Remote replicas (cloud VMs, pods; ``serving/remote.py``) are fronted the same way when the
  gateway is given ``RemoteTargets``: routed with the deployment's own token, held and woken
  through the provider while hibernated, logged. Their endpoints come from the registry.
* A public listener (``GatewayConfig.public``, ``serving/public.py``) serves the same routes over
  HTTPS on an address the VMs reach; there no request but a health check is anonymous
  (``handle_public``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from thrifty import tokens
from thrifty.errors import ServingError, ThriftyError
from thrifty.policies.autoscale import AutoscaleSettings, ScaleState, decide_replicas
from thrifty.serving import auth
from thrifty.serving.http import Request, Response, error_response, json_response
from thrifty.serving.metrics import Metrics
from thrifty.serving.pool import WarmPool, Worker, close_pipes
from thrifty.serving.public import PublicListener
from thrifty.serving.remote import RemoteReplica, RemoteTargets, endpoints_of, fronted, with_bearer
from thrifty.serving.server import DEFAULT_MAX_BODY_BYTES, parse_model_path
from thrifty.states import state_of

log = logging.getLogger("thrifty.serving.gateway")
MAX_ATTEMPTS = 4
SAVE_DELAY_S = 0.5


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8470
    api_tokens: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    wake_timeout_s: float = 30.0
    #: a cloud wake starts instances: minutes, not the seconds of a local replica
    remote_wake_timeout_s: float = 600.0
    request_timeout_s: float = 60.0
    warm_pool_size: int = 1
    reconcile_interval_s: float = 1.0
    log_flush_interval_s: float = 1.0
    #: load samples for autoscaling (deployments with ``spec.serving["autoscale"]``), averaged over
    #: the last ``autoscale_window`` samples
    autoscale_interval_s: float = 0.25
    autoscale_window: int = 4
    #: the HTTPS listener on an address the VMs reach (None: loopback only)
    public: PublicListener | None = None


class Wake:
    """One wake in progress: its task and how many requests are held waiting for it."""

    def __init__(self, task: asyncio.Task[Any] | None = None) -> None:
        self.task = task
        self.held = 0

    def done(self) -> bool:
        return self.task is None or self.task.done()


@dataclass
class ModelState:
    """What the gateway knows of one deployment."""

    name: str
    order: dict[str, Any]
    desired: int = 0
    replicas: list[Any] = field(default_factory=list)  # Worker, or RemoteReplica when remote
    starting: int = 0
    waking: Wake | None = None
    #: a local change (a wake) not yet saved to the registry, and when the last save finished:
    #: registry reads that started before that save are stale for this model and are ignored
    unsaved: bool = False
    saved_at: float = 0.0
    retiring: list[Worker] = field(default_factory=list)
    #: the target it runs on; a remote one (VM, pod) is reached at ``endpoints`` with ``token``
    provider: str = "local"
    endpoints: list[str] = field(default_factory=list)
    token: str | None = None
    last_wake: dict[str, float] = field(default_factory=dict)
    autoscale: AutoscaleSettings | None = None
    scaling: ScaleState = field(default_factory=ScaleState)
    load: deque[float] = field(default_factory=lambda: deque(maxlen=4))
    #: replicas of the previous spec: they serve until the new spec's replicas are live
    stale: list[Worker] = field(default_factory=list)

    def outstanding(self) -> float:
        """Requests in flight at its replicas plus those held for a wake."""
        held = self.waking.held if self.waking is not None and not self.waking.done() else 0
        return float(sum(r.upstream.outstanding for r in self.replicas if r.alive) + held)

    @property
    def remote(self) -> bool:
        return self.provider != "local"

    def pick(self) -> Any:
        live = [r for r in self.replicas if r.alive] or [r for r in self.stale if r.alive]
        return min(live, key=lambda r: r.upstream.outstanding) if live else None


def replica_order(name: str, spec: dict[str, Any], max_body_bytes: int) -> dict[str, Any]:
    """The worker's load order from a deployment's stored spec (see providers/local.py)."""
    runtime = spec.get("runtime") or {}
    if not runtime.get("model_path"):
        raise ServingError(
            f"deployment {name!r} has no model path", hint=f"run `thrifty deploy-local` for {name!r} again"
        )
    return {
        "name": name,
        "model_path": runtime["model_path"],
        "tokenizer_path": runtime.get("tokenizer_path"),
        "optimized_graph_path": runtime.get("optimized_graph_path"),
        "runner": dict(spec.get("serving") or {}),
        "max_body_bytes": max_body_bytes,
    }


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        registry: Any,
        metrics: Metrics | None = None,
        remote: RemoteTargets | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.remote = remote
        self.metrics = metrics or Metrics("thrifty_gateway")
        self.models: dict[str, ModelState] = {}
        self.pool = WarmPool(config.warm_pool_size)
        self._tokens = tuple(t.encode() for t in config.api_tokens)
        self._log_rows: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Future[Any]] = set()
        self._reconcile_lock = asyncio.Lock()
        self.url = f"http://{config.host}:{config.port}"

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.pool.fill()
        await self.reconcile()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self.config.reconcile_interval_s, self.reconcile)),
            loop.create_task(self._every(self.config.log_flush_interval_s, self.flush_log)),
            loop.create_task(self._every(self.config.autoscale_interval_s, self.autoscale_step)),
        ]

    async def close(self) -> None:
        """Stop background work, every replica (each drains) and the warm pool."""
        wakes = [s.waking.task for s in self.models.values() if s.waking and s.waking.task]
        unfinished = [*self._tasks, *self._pending, *wakes]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        await asyncio.gather(*(r.stop() for s in self.models.values() for r in (*s.replicas, *s.stale)))
        await self.pool.close()  # and whatever else is still alive: no child outlives the gateway
        await self.flush_log()

    async def _every(self, interval_s: float, action: Any) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await action()
            except Exception:  # the gateway outlives a registry hiccup
                log.exception("background %s failed", getattr(action, "__name__", action))

    # -- requests ------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | Any:
        """The loopback listener: the gateway's tokens, or none from a loopback peer (``auth``)."""
        open_route = self._open_route(request)
        if open_route is not None:
            return open_route
        return auth.check(request, self._tokens) or self._route(request)

    def handle_public(self, request: Request) -> Response | Any:
        """The public listener: the same routes, but nothing anonymous whatever the peer (a tunnel
        or a TLS terminator here makes remote clients look like loopback)."""
        open_route = self._open_route(request)
        if open_route is not None:
            return open_route
        return self._public_check(request) or self._route(request)

    def _open_route(self, request: Request) -> Response | Any | None:
        """Health checks, and interruption notices (their own credential: the notice token)."""
        path = request.path
        if path == "/v2/health/live":
            return json_response({"live": True})
        if path == "/v2/health/ready":
            return json_response({"ready": True})
        if path.startswith("/v2/deployments/") and path.endswith("/interruption"):
            return self._interruption(request)  # a VM's own credential, not the gateway's tokens
        return None

    def _public_check(self, request: Request) -> Response | None:
        """None when the bearer is a gateway token, or the deployment token of the model the path
        names; else 401. No request is anonymous here."""
        given = auth.bearer(request)
        challenge = [("www-authenticate", 'Bearer realm="thrifty"')]
        if given is None:
            return error_response(
                401,
                "the front door's public address answers no anonymous request: send 'Authorization: "
                "Bearer <the deployment's token, or a THRIFTY_API_TOKENS token>'",
                challenge,
            )
        if self._tokens and auth.check(request, self._tokens) is None:
            return None
        route = parse_model_path(request.path)
        state = self.models.get(route.name) if route is not None else None
        if state is not None and state.token and hmac.compare_digest(given, state.token.encode()):
            return None
        return error_response(401, "invalid bearer token for this route", challenge)

    def _route(self, request: Request) -> Response | Any:
        path = request.path
        if path == "/metrics":
            return Response(200, self.metrics.render(), "text/plain; version=0.0.4")
        if path in ("/v2", "/v2/"):
            return json_response(
                {"name": "thrifty-gateway", "version": "1", "extensions": ["binary_tensor_data"]}
            )
        if path.startswith("/admin/"):
            return self._admin(request)
        route = parse_model_path(path)
        if route is None:
            return error_response(
                404, f"no route for {request.method} {path}; see the Open Inference Protocol v2"
            )
        return self._proxy(request, route.name)

    async def _admin(self, request: Request) -> Response:
        if request.path == "/admin/reconcile" and request.method == "POST":
            await self.reconcile()
            return json_response(self.describe())
        if request.path == "/admin/status":
            return json_response(self.describe())
        return error_response(404, f"no admin route {request.path}")

    def describe(self) -> dict[str, Any]:
        public = self.config.public
        return {
            "url": self.url,
            "public": None if public is None else {"url": public.url, "tls_cert_sha256": public.sha256},
            "pid": os.getpid(),
            "models": {
                s.name: {
                    "desired": s.desired,
                    "provider": s.provider,
                    "replicas": [
                        {
                            "pid": r.pid,
                            "port": r.port,
                            "url": getattr(r, "url", None),
                            "outstanding": r.upstream.outstanding,
                        }
                        for r in s.replicas
                        if r.alive
                    ],
                    "starting": s.starting,
                    "retiring": [r.pid for r in s.retiring],
                    "last_wake": s.last_wake,
                    "stale": [r.pid for r in s.stale if r.alive],
                }
                for s in self.models.values()
            },
            "warm_pool": {
                "size": self.pool.size,
                "taken_warm": self.pool.taken_warm,
                "taken_cold": self.pool.taken_cold,
                "spares": [{"pid": w.pid, "port": w.port} for w in self.pool.spares()],
            },
            "workers": [
                *(
                    {"pid": w.pid, "port": w.port, "role": w.role, "model": w.name or None}
                    for w in self.pool.workers
                ),
                *({"pid": pid, "port": None, "role": "booting", "model": None} for pid in self.pool.booting),
            ],
        }

    async def _proxy(self, request: Request, name: str) -> Response:
        started = time.perf_counter()
        state = self.models.get(name) or await self._find(name)
        if state is None:
            return error_response(404, f"no deployment named {name!r}; deploy it with `thrifty deploy-local`")
        response, cold = await self._forward(request, state, started)
        self._record(name, started, cold, response, request.size_bytes())
        return response

    async def _forward(self, request: Request, state: ModelState, started: float) -> tuple[Response, bool]:
        data = with_bearer(request.raw_head, state.token) + b"\r\n\r\n" + request.body
        cold = False
        last_error = ""
        for _ in range(MAX_ATTEMPTS):
            replica = state.pick()
            if replica is None:
                cold = True
                replica_or_error = await self._await_wake(state, started)
                if isinstance(replica_or_error, Response):
                    return replica_or_error, cold
                replica = replica_or_error
            try:
                status, headers, body = await self._send(replica, data)
            except TimeoutError:  # the replica is alive but slow: retrying would only pile on
                message = f"model {state.name!r} did not answer within {self.config.request_timeout_s:g} s"
                return error_response(504, message), cold
            except (ConnectionError, OSError) as exc:
                last_error = str(exc)
                self._lost(state, replica)
                continue
            extra = (
                [("inference-header-content-length", headers["inference-header-content-length"])]
                if "inference-header-content-length" in headers
                else []
            )
            return Response(status, body, headers.get("content-type", "application/json"), extra), cold
        return error_response(
            502, f"model {state.name!r}: every replica failed ({last_error}); retried {MAX_ATTEMPTS} times"
        ), cold

    async def _send(self, replica: Worker | RemoteReplica, data: bytes) -> tuple[int, dict[str, str], bytes]:
        replica.in_use += 1  # before the first await: a retiring replica waits for this request
        try:
            return await replica.upstream.request(data, self.config.request_timeout_s)
        finally:
            replica.in_use -= 1

    async def _await_wake(self, state: ModelState, started: float) -> Any:
        timeout_s = self.config.remote_wake_timeout_s if state.remote else self.config.wake_timeout_s
        remaining = timeout_s - (time.perf_counter() - started)
        wake = self.wake(state)
        assert wake.task is not None
        wake.held += 1
        try:
            return await asyncio.wait_for(asyncio.shield(wake.task), max(remaining, 0.001))
        except TimeoutError:
            return error_response(
                504,
                f"model {state.name!r} did not wake within {timeout_s:g} s; see the gateway log",
            )
        except ServingError as exc:
            return error_response(504, f"model {state.name!r} could not be woken: {exc.message}")
        finally:  # the caller sends at once (no await in between), so `in_use` takes over from `held`
            wake.held -= 1

    def wake(self, state: ModelState, *, by_request: bool = True) -> Wake:
        """The one wake in progress for ``state`` (started if none): many waiters, one replica."""
        if state.waking is None or state.waking.done():
            wake = Wake()
            wake.task = asyncio.get_running_loop().create_task(self._wake(state, by_request, wake))
            state.waking = wake
        return state.waking

    async def _wake(self, state: ModelState, by_request: bool, wake: Wake) -> Any:
        if state.remote:
            return await self._wake_remote(state, by_request)
        kind = "replica_started"
        if state.desired == 0:  # saved now, while the replica loads: a later hibernate overrides it
            state.desired, state.unsaved, kind = 1, True, ""
            self._background(self._save_wake, state)
        worker = await self._start_replica(state, kind, "no live replica", wake)
        if by_request:  # a cold start: requests waited for this replica
            self.metrics.cold_starts.labels(state.name).inc()
        return worker

    async def _start_replica(
        self, state: ModelState, kind: str = "replica_started", reason: str = "", wake: Wake | None = None
    ) -> Worker:
        started = time.perf_counter()
        worker = await self._load_replica(state)
        if not self._wanted(state):  # hibernated, scaled down or deleted while it started
            self._background_async(self._retire(state, worker, wake))
            return worker
        worker.role = "replica"
        state.replicas.append(worker)
        self.metrics.wake_seconds.labels(state.name).observe(time.perf_counter() - started)
        self._background_async(self._watch(state, worker))
        self._retire_stale(state)
        log.info(
            "replica of %s ready on port %s (pid %s) in %.1f ms: %s",
            state.name,
            worker.port,
            worker.pid,
            (time.perf_counter() - started) * 1000,
            worker.timings,
        )
        # the registry write waits until the first requests are answered (it would compete with them)
        asyncio.get_running_loop().call_later(
            SAVE_DELAY_S, self._background, self._save_state, state, kind, reason or f"port {worker.port}"
        )
        return worker

    async def _load_replica(self, state: ModelState) -> Worker:
        state.starting += 1
        try:
            worker = await self.pool.take()
            try:
                await worker.load(state.order, self.config.wake_timeout_s)
            except BaseException:
                worker.kill()
                await worker.process.wait()
                close_pipes(worker.process)
                raise
        finally:
            state.starting -= 1
            self.pool.fill()
        return worker

    def _wanted(self, state: ModelState) -> bool:
        live = sum(r.alive for r in state.replicas)
        return self.models.get(state.name) is state and live < state.desired

    async def _retire(self, state: ModelState, worker: Worker, wake: Wake | None) -> None:
        """Answer the requests that waited for ``worker`` (never an error), then stop it."""
        worker.role = "retiring"
        state.retiring.append(worker)
        log.info("replica of %s (pid %s) is no longer wanted: stopping it", state.name, worker.pid)
        deadline = time.monotonic() + self.config.request_timeout_s
        while ((wake and wake.held) or worker.in_use) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        try:
            await worker.stop()
        finally:
            state.retiring.remove(worker)

    async def _watch(self, state: ModelState, worker: Worker) -> None:
        code = await worker.process.wait()
        close_pipes(worker.process)
        if not worker.stopping:
            log.warning("replica of %s (pid %s) exited with %s", state.name, worker.pid, code)
            self._lost(state, worker)

    def _retire_stale(self, state: ModelState) -> None:
        """Drain and stop the previous spec's replicas once the new spec has its desired replicas."""
        fresh = sum(r.alive for r in state.replicas)
        if not state.stale or fresh < state.desired:
            return
        stale, state.stale = state.stale, []
        for worker in stale:
            log.info("replica of %s (pid %s) served the previous spec: draining it", state.name, worker.pid)
            self._background_async(self._retire(state, worker, None))

    def _lost(self, state: ModelState, worker: Any) -> None:
        if worker in state.stale:
            state.stale.remove(worker)
            worker.kill()
        if worker in state.replicas:
            state.replicas.remove(worker)
            worker.kill()
            if state.remote:  # the provider owns the VM; the rebalance and the registry follow it
                log.warning("replica %s of %s stopped answering", worker.url, state.name)
                return
            self._background(self._save_state, state, "replica_lost", f"replica pid {worker.pid} died")

    # -- desired state -------------------------------------------------------------------------
    async def _find(self, name: str) -> ModelState | None:
        await self.reconcile()
        return self.models.get(name)

    async def reconcile(self) -> None:
        """Bring replicas in line with the registry's deployments (provider 'local')."""
        async with self._reconcile_lock:
            read_at = time.monotonic()
            rows = await asyncio.get_running_loop().run_in_executor(
                None, self.registry.list_deployments, None if self.remote else "local"
            )
            seen = set()
            for row in rows:
                if row.provider == "local":
                    self._apply(row, read_at)
                elif fronted(row.provider):
                    self._apply_remote(row, read_at)
                else:
                    continue
                seen.add(row.name)
            for name in [n for n in self.models if n not in seen]:
                state = self.models.pop(name)
                await asyncio.gather(*(r.stop() for r in (*state.replicas, *state.stale)))
            for state in self.models.values():
                await self._converge(state)
            self._stop_strays()

    def _stop_strays(self) -> None:
        """Stop any replica worker no deployment owns any more (none should exist: a safety net)."""
        owned = {id(r) for s in self.models.values() for r in (*s.replicas, *s.retiring, *s.stale)}
        for worker in self.pool.workers:
            if worker.role == "replica" and id(worker) not in owned:
                log.warning(
                    "stopping stray replica pid %s (port %s) of %s", worker.pid, worker.port, worker.name
                )
                worker.mark_stopping()
                self._background_async(worker.stop())

    def _apply(self, row: Any, read_at: float) -> None:
        state = self.models.get(row.name)
        try:
            order = replica_order(row.name, row.spec or {}, self.config.max_body_bytes)
        except ServingError as exc:
            log.error("%s", exc)
            return
        desired = row.replicas if state_of(row.state).active else 0
        if state is None:
            state = self.models[row.name] = ModelState(row.name, order, desired)
        elif not state.unsaved and state.saved_at < read_at:  # a local wake wins until it is saved
            if order != state.order:  # a new revision: the current replicas serve until it is live
                state.stale.extend(r for r in state.replicas if r.alive)
                state.replicas = []
            state.order, state.desired = order, desired
        state.autoscale = self._autoscale_settings(row)

    def _autoscale_settings(self, row: Any) -> AutoscaleSettings | None:
        try:
            return AutoscaleSettings.from_spec((row.spec or {}).get("serving"))
        except ThriftyError as exc:
            log.error("%s: autoscale off: %s (%s)", row.name, exc.message, exc.hint)
            return None

    async def _converge(self, state: ModelState) -> None:
        if state.remote:
            self._converge_remote(state)
            return
        live = [r for r in state.replicas if r.alive]
        waking = state.waking is not None and not state.waking.done()
        missing = state.desired - len(live) - state.starting - (waking and state.starting == 0)
        for index in range(max(missing, 0)):
            if index == 0 and not live and not waking:
                self._background_async(
                    self.wake(state, by_request=False).task
                )  # requests arriving now join it
            else:
                self._background_async(self._start_replica(state, "replica_started", "reconcile"))
        self._retire_stale(state)
        for worker in sorted(live, key=lambda r: r.upstream.outstanding)[: max(-missing, 0)]:
            state.replicas.remove(worker)
            worker.mark_stopping()
            self._background_async(worker.stop())
        if missing < 0 and not state.replicas:
            log.info("%s hibernated (0 replicas)", state.name)

    def _background_async(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background: %s", task.exception())

    def _background(self, fn: Any, *args: Any) -> None:
        self._background_async(asyncio.get_running_loop().run_in_executor(None, fn, *args))

    def _save_state(self, state: ModelState, kind: str, reason: str) -> None:
        """Record the live replicas (and an event ``kind``, unless empty) in the registry."""
        live = [r for r in state.replicas if r.alive]
        resources = {"replicas": [{"pid": r.pid, "port": r.port} for r in live], "gateway": self.url}
        self.registry.upsert_deployment(
            state.name, resources=resources, endpoint_url=f"{self.url}/v2/models/{state.name}"
        )
        if kind:
            self.registry.add_event(state.name, kind, reason)

    def _save_wake(self, state: ModelState) -> None:
        """The wake's desired state; registry reads that began before this write ends are stale."""
        try:
            self.registry.upsert_deployment(state.name, state="running", replicas=max(state.desired, 1))
            self.registry.add_event(state.name, "wake", "request while hibernated")
        finally:
            state.saved_at = time.monotonic()
            state.unsaved = False

    # -- interruption notices from the VMs ------------------------------------------------------
    async def _interruption(self, request: Request) -> Response:
        """``POST /v2/deployments/NAME/interruption`` from a VM's watcher: record it, rebalance."""
        name = request.path.removeprefix("/v2/deployments/").removesuffix("/interruption")
        if request.method != "POST":
            return error_response(405, "POST the notice as JSON")
        if self.remote is None or self.remote.on_interruption is None:
            return error_response(404, "this gateway fronts no cloud deployments; start it with `thrifty up`")
        token = self.remote.token_for(name)
        if token is None:
            return error_response(404, f"no cloud deployment named {name!r} was deployed from this machine")
        given = request.headers.get("authorization", "").partition(" ")[2].strip()
        if not hmac.compare_digest(given.encode(), tokens.notice_token(token, name).encode()):
            return error_response(401, f"not the notice token of deployment {name!r}")
        try:
            notice = json.loads(request.body or b"{}")
        except ValueError:
            notice = None
        if not isinstance(notice, dict) or notice.get("deployment") != name or not notice.get("instance_id"):
            return error_response(400, "send the watcher's notice: JSON with deployment and instance_id")
        loop = asyncio.get_running_loop()
        via = await loop.run_in_executor(None, self._take_notice, name, notice)
        return json_response({"accepted": True, "deployment": name, "via": via}, status=202)

    def _take_notice(self, name: str, notice: dict[str, Any]) -> str:
        assert self.remote is not None and self.remote.on_interruption is not None
        reason = (
            f"{notice.get('cloud')} {notice['instance_id']}: {notice.get('action')} at {notice.get('at')}"
        )
        self.registry.add_event(name, "interruption", reason, details=notice)
        log.warning("%s: interruption notice %s", name, reason)
        return self.remote.on_interruption(name, notice)

    # -- autoscaling -----------------------------------------------------------------------------
    async def autoscale_step(self) -> None:
        """Sample each opted-in deployment's load; scale it when the policy says so."""
        now = time.monotonic()
        for state in list(self.models.values()):
            if state.autoscale is None or state.desired < 1 or state.unsaved:
                continue  # zero is the hibernation sweep's and the wake's to change
            if state.load.maxlen != self.config.autoscale_window:
                state.load = deque(maxlen=self.config.autoscale_window)
            state.load.append(state.outstanding())
            load = sum(state.load) / len(state.load)
            wanted = decide_replicas(state.desired, load, state.autoscale, state.scaling, now)
            if wanted != state.desired:
                await self._scale_to(state, wanted, load)

    async def _scale_to(self, state: ModelState, replicas: int, load: float) -> None:
        assert state.autoscale is not None
        target = state.autoscale.target_outstanding_per_replica
        reason = (
            f"{state.desired} → {replicas} replicas: {load:.1f} requests outstanding, target {target:g} each"
        )
        log.info("%s: autoscale %s", state.name, reason)
        state.desired, state.unsaved = replicas, True
        state.load.clear()
        if state.remote:
            self._background_async(self._scale_remote(state, replicas, reason))
            return
        self._background(self._save_scale, state, replicas, reason)
        await self._converge(state)

    def _save_scale(self, state: ModelState, replicas: int, reason: str, endpoints: Any = None) -> None:
        try:
            fields: dict[str, Any] = {"replicas": replicas, "state": "running"}
            if endpoints is not None:
                row = self.registry.get_deployment(state.name)
                fields["resources"] = {**(row.resources or {}), "endpoints": endpoints}
            self.registry.upsert_deployment(state.name, **fields)
            self.registry.add_event(state.name, "autoscale", reason)
        finally:
            state.saved_at = time.monotonic()
            state.unsaved = False

    async def _scale_remote(self, state: ModelState, replicas: int, reason: str) -> None:
        """Scale a VM deployment through its provider; route to its running endpoints."""
        assert self.remote is not None
        try:
            status = await self.remote.scale(state.provider, state.name, replicas)
        except ThriftyError as exc:
            log.error("%s: autoscale to %d failed: %s", state.name, replicas, exc.message)
            state.unsaved = False
            return
        state.endpoints = endpoints_of(status.details, status.endpoint_url)
        self._converge_remote(state)
        await asyncio.get_running_loop().run_in_executor(
            None, self._save_scale, state, replicas, reason, state.endpoints
        )

    # -- remote replicas (cloud VMs, pods) -----------------------------------------------------
    def _apply_remote(self, row: Any, read_at: float) -> None:
        assert self.remote is not None
        active = state_of(row.state).active
        endpoints = endpoints_of(row.resources, row.endpoint_url) if active else []
        state = self.models.get(row.name)
        if state is None:
            token = self.remote.token_for(row.name)
            self.models[row.name] = ModelState(
                row.name, {}, len(endpoints), provider=row.provider, endpoints=endpoints, token=token
            )
        elif not state.unsaved and state.saved_at < read_at:  # a wake wins until it is saved
            state.desired, state.endpoints = len(endpoints), endpoints
            state.provider = row.provider  # a migration may have moved it to another cloud
        self.models[row.name].autoscale = self._autoscale_settings(row)

    def _converge_remote(self, state: ModelState) -> None:
        """Route to exactly the endpoints the registry (or the last wake) names."""
        assert self.remote is not None
        wanted = [self.remote.reach(u) for u in state.endpoints]
        keep = [r for r in state.replicas if r.alive and r.url in wanted]
        for replica in state.replicas:
            if replica not in keep:
                self._background_async(replica.stop())
        have = {r.url for r in keep}
        tls = self.remote.tls_for(state.name) if any(u.startswith("https://") for u in wanted) else None
        state.replicas = [*keep, *(RemoteReplica(u, tls) for u in wanted if u not in have)]

    async def _wake_remote(self, state: ModelState, by_request: bool) -> Any:
        """Wake a cloud deployment through its provider; the first ready endpoint takes the requests."""
        assert self.remote is not None
        state.unsaved = True
        try:
            woken = await self.remote.wake(state.provider, state.name, self.config.remote_wake_timeout_s)
        except ThriftyError as exc:
            state.unsaved = False
            raise ServingError(f"{state.provider} could not wake it: {exc.message}", hint=exc.hint) from exc
        state.endpoints, state.desired = woken.endpoints, len(woken.endpoints)
        self._converge_remote(state)
        self.metrics.wake_seconds.labels(state.name).observe(woken.ready_at - woken.started_at)
        if by_request:
            self.metrics.cold_starts.labels(state.name).inc()
        state.last_wake = woken.timings()
        self._background(self._save_remote_wake, state, woken)
        return state.pick()

    def _save_remote_wake(self, state: ModelState, woken: Any) -> None:
        try:
            row = self.registry.get_deployment(state.name)
            resources = {**(row.resources or {}), "endpoints": woken.endpoints, "front_door": self.url}
            self.registry.upsert_deployment(
                state.name,
                state="running",
                replicas=len(woken.endpoints),
                endpoint_url=woken.endpoints[0],
                resources=resources,
            )
            reason = f"request while hibernated: {state.provider} woke it ({woken.summary()})"
            self.registry.add_event(state.name, "wake", reason, details=woken.timings())
        finally:
            state.saved_at = time.monotonic()
            state.unsaved = False

    # -- request log ---------------------------------------------------------------------------
    def _record(self, name: str, started: float, cold: bool, response: Response, request_bytes: int) -> None:
        latency_s = time.perf_counter() - started
        status = response.status
        self.metrics.requests.labels(name, str(status)).inc()
        self.metrics.latency.labels(name).observe(latency_s)
        self._log_rows.append(
            {
                "model_name": name,
                "at": datetime.now(UTC),
                "latency_ms": latency_s * 1000,
                "cold": cold,
                "status_code": status,
                "request_bytes": request_bytes,
                "response_bytes": response.size_bytes(),  # what the transfer line of the ledger bills
            }
        )

    async def flush_log(self) -> None:
        rows, self._log_rows = self._log_rows, []
        if rows:
            await asyncio.get_running_loop().run_in_executor(None, self.registry.log_requests_bulk, rows)


async def run_gateway(
    config: GatewayConfig,
    registry: Any,
    *,
    stop: asyncio.Event | None = None,
    pid_file: Path | None = None,
    remote: RemoteTargets | None = None,
) -> None:
    """Serve the gateway until SIGTERM/SIGINT (or ``stop``), then drain and stop every replica."""
    from thrifty.serving.app import bind_socket, serve_until_stopped

    sock = bind_socket(config.host, config.port)
    public = config.public
    public_sock = bind_socket(public.host, public.port) if public is not None else None
    gateway = Gateway(config, registry, remote=remote)
    await gateway.start()
    stop = stop or asyncio.Event()
    served = [serve_until_stopped(gateway.handle, sock, max_body_bytes=config.max_body_bytes, stop=stop)]
    log.info("gateway listening on %s", gateway.url)
    if public is not None and public_sock is not None:
        from thrifty.tls import server_context

        context = server_context(public.cert.cert_pem, public.cert.key_pem)
        served.append(
            serve_until_stopped(
                gateway.handle_public,
                public_sock,
                max_body_bytes=config.max_body_bytes,
                stop=stop,
                ssl_context=context,
            )
        )
        log.info("front door public on %s (certificate sha256 %s)", public.url, public.sha256)
    try:
        await asyncio.gather(*served)
    finally:
        with contextlib.suppress(Exception):
            await gateway.close()
