"""Replica processes and the warm pool that makes waking fast.

A ``Worker`` is a ``thrifty.serving.worker`` process started ahead of time: Python, onnxruntime,
tokenizers and the server are imported and its port is reserved before any model is asked for.
Waking a model then costs only the session creation (plus a pipe round trip), not a process start.

Every worker is tracked from its spawn until its process has exited (``WarmPool.workers``), with
its role::

    spare ──take──▶ loading ──▶ replica ──────────────▶ stopping
                           └──▶ retiring (no longer wanted: answers the requests that waited for
                                it, then stops)

so the gateway can account for every child process it has, and ``close`` leaves none behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thrifty.errors import ServingError
from thrifty.serving.http import UpstreamPool

log = logging.getLogger("thrifty.serving.pool")
WORKER_START_TIMEOUT_S = 60.0


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    port: int
    pid: int
    name: str = ""
    load_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    upstream: UpstreamPool = field(init=False)
    stopping: bool = False
    role: str = "spare"
    #: requests the gateway is forwarding to this worker now (counted before the connection opens)
    in_use: int = 0

    def __post_init__(self) -> None:
        self.upstream = UpstreamPool("127.0.0.1", self.port)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self.stopping

    async def load(self, order: dict[str, Any], timeout_s: float) -> float:
        """Hand the worker its model; the load time in ms once it serves. ServingError if it fails."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.name = str(order["name"])
        self.process.stdin.write(json.dumps(order).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        event = json.loads(line) if line else {"event": "failed", "error": "worker exited while loading"}
        if event.get("event") != "ready":
            self.kill()
            raise ServingError(f"replica of {self.name!r} failed to load: {event.get('error')}")
        self.load_ms = float(event.get("load_ms", 0.0))
        self.timings = {k: float(v) for k, v in event.items() if k.endswith("_ms")}
        return self.load_ms

    def mark_stopping(self) -> None:
        """From now on no request is routed here and the worker is accounted as stopping."""
        self.stopping = True
        self.role = "stopping"

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Drain in-flight requests, then exit (killed after the timeout)."""
        self.mark_stopping()
        self.upstream.close()
        if self.process.returncode is not None:
            close_pipes(self.process)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, AttributeError):
            assert self.process.stdin is not None
            self.process.stdin.write(b'{"command": "stop"}\n')
            await self.process.stdin.drain()
        try:
            await asyncio.wait_for(self.process.wait(), drain_timeout_s)
        except TimeoutError:
            self.kill()
            await self.process.wait()
        close_pipes(self.process)

    def kill(self) -> None:
        self.mark_stopping()
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


def close_pipes(process: asyncio.subprocess.Process) -> None:
    """Close the pipe transports of an exited process (uvloop warns about them otherwise)."""
    transport = getattr(process, "_transport", None)
    if transport is not None:
        transport.close()


async def spawn_worker(
    on_process: Callable[[asyncio.subprocess.Process], None] | None = None,
) -> Worker:
    """Start one warm worker and wait until it has imported everything and bound its port.

    ``on_process`` is told of the process as soon as it exists (before it is warm).
    """
    creating = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "thrifty.serving.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
    )
    try:
        process = await asyncio.shield(creating)
    except asyncio.CancelledError:  # the process exists anyway: end it before giving up
        await _discard(await creating)
        raise
    if on_process is not None:
        on_process(process)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), WORKER_START_TIMEOUT_S)
        event = json.loads(line)
    except BaseException as exc:  # timeout, garbage, or the wake was cancelled: no orphan left
        await _discard(process)
        if isinstance(exc, TimeoutError | ValueError):
            raise ServingError(
                "a replica worker did not start", hint="see the gateway log for its error"
            ) from exc
        raise
    return Worker(process, int(event["port"]), int(event["pid"]))


async def _discard(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()
    close_pipes(process)


class WarmPool:
    """Keeps ``size`` started workers ready; ``take`` hands one out (``fill`` starts its replacement).

    ``workers`` holds every worker the pool started whose process has not exited yet, whatever
    became of it (spare, replica, stopping): the gateway's full list of children.
    """

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._spares: list[asyncio.Task[Worker]] = []
        self._workers: list[Worker] = []
        self._booting: list[asyncio.subprocess.Process] = []
        self.closed = False
        self.taken_warm = 0
        self.taken_cold = 0

    @property
    def workers(self) -> list[Worker]:
        self._workers = [w for w in self._workers if w.process.returncode is None]
        return list(self._workers)

    @property
    def booting(self) -> list[int]:
        """Pids of worker processes started but not warm yet."""
        self._booting = [p for p in self._booting if p.returncode is None]
        return [p.pid for p in self._booting]

    def spares(self) -> list[Worker]:
        """The spares started and waiting (not the ones still starting)."""
        done = [t for t in self._spares if t.done() and not t.cancelled() and t.exception() is None]
        return [t.result() for t in done if t.result().process.returncode is None]

    async def _spawn(self) -> Worker:
        holder: list[asyncio.subprocess.Process] = []

        def booting(process: asyncio.subprocess.Process) -> None:
            holder.append(process)
            self._booting.append(process)

        try:
            worker = await spawn_worker(booting)
        finally:
            for process in holder:
                self._booting.remove(process)
        self._workers.append(worker)
        return worker

    def fill(self) -> None:
        while not self.closed and len(self._spares) < self.size:
            self._spares.append(asyncio.get_running_loop().create_task(self._spawn()))

    async def take(self) -> Worker:
        """A started worker: a warm spare when there is one, else a fresh start (cold).

        The pool is not refilled here: the caller calls ``fill`` once its replica is loaded, so the
        replacement's start (a Python process importing onnxruntime) never competes with a wake.
        """
        if self.closed:
            raise ServingError("the gateway is shutting down", hint="start it again with `thrifty up`")
        started = time.perf_counter()
        ready = [t for t in self._spares if t.done() and not t.cancelled() and t.exception() is None]
        task = ready[0] if ready else (self._spares[0] if self._spares else None)
        if task is not None:
            self._spares.remove(task)
        else:
            task = asyncio.get_running_loop().create_task(self._spawn())
        warm = task.done()
        worker = await task
        if worker.process.returncode is not None:  # a spare that died while waiting
            worker = await self._spawn()
            warm = False
        worker.role = "loading"
        self.taken_warm += warm
        self.taken_cold += not warm
        log.debug(
            "worker %s taken (%s) in %.1f ms",
            worker.pid,
            "warm" if warm else "cold",
            (time.perf_counter() - started) * 1000,
        )
        return worker

    async def close(self) -> None:
        """Stop the spares and any worker still alive (whoever was meant to stop it)."""
        self.closed = True
        spares, self._spares = self._spares, []
        for task in spares:
            task.cancel()
        await asyncio.gather(*spares, return_exceptions=True)
        await asyncio.gather(*(w.stop(1.0) for w in self.workers))
