"""Remote replicas behind the front door: cloud VMs and pods, fronted as local workers are.

    client ──▶ gateway ──(the deployment's own token)──▶ VM / pod replica (least outstanding)
                  │
                  └── hibernated: hold the request, ``provider.wake`` (start instances / scale up),
                      poll ``provider.status`` until an endpoint answers /v2/health/ready, forward

The gateway authenticates the client with its own tokens, then calls a replica with the bearer
token of that deployment (``thrifty.tokens``): a replica holds only the digest. Every request is
logged into the registry's request log under the deployment's name, so the hibernation sweep
decides from real traffic for cloud deployments too.

``RemoteTargets`` is what the gateway needs of the clouds: a provider per target name and a way to
reach an endpoint. ``reach`` is the identity on a real network; a rehearsal or a test maps a VM's
address to the loopback stand-in that plays the VM.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from thrifty.errors import ServingError
from thrifty.serving.http import UpstreamPool
from thrifty.targets import TargetKind, all_targets

#: target kinds whose replicas the gateway fronts (serverless platforms front themselves)
FRONTED_KINDS = (TargetKind.VM, TargetKind.KUBERNETES)


def fronted(provider: str) -> bool:
    """True when deployments on target ``provider`` have replicas the gateway routes to."""
    descriptor = all_targets().get(provider)
    return descriptor is not None and descriptor.kind in FRONTED_KINDS


@dataclass
class RemoteReplica:
    """One endpoint of a cloud deployment, with keep-alive connections to it."""

    url: str
    #: the pinned certificate's context for an ``https://`` replica (``RemoteTargets.tls_for``)
    ssl_context: Any = None
    upstream: UpstreamPool = field(init=False)
    in_use: int = 0
    stopping: bool = False
    pid: int | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        tls = parts.scheme == "https"
        if parts.scheme not in ("http", "https") or not parts.hostname or (tls and self.ssl_context is None):
            raise ServingError(
                f"replica endpoint {self.url!r} is not http://host:port, or https:// with a pinned certificate",
                hint="an https replica's certificate is pinned in its deployment's spec: redeploy it from here",
            )
        self.upstream = UpstreamPool(parts.hostname, parts.port or (443 if tls else 80), self.ssl_context)

    @property
    def port(self) -> int:
        return self.upstream.port

    @property
    def alive(self) -> bool:
        return not self.stopping

    def mark_stopping(self) -> None:
        self.stopping = True

    def kill(self) -> None:
        """Stop routing here (the VM itself is the provider's to stop)."""
        self.mark_stopping()
        self.upstream.close()

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        self.mark_stopping()
        deadline = time.monotonic() + drain_timeout_s
        while self.in_use and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.upstream.close()


def with_bearer(raw_head: bytes, token: str | None) -> bytes:
    """The request head with the client's Authorization replaced by the deployment's token."""
    if token is None:
        return raw_head
    lines = [line for line in raw_head.split(b"\r\n") if not line.lower().startswith(b"authorization:")]
    return b"\r\n".join([*lines, b"Authorization: Bearer " + token.encode()])


def endpoints_of(resources: Mapping[str, Any] | None, endpoint_url: str | None) -> list[str]:
    """The replica endpoints the registry holds for a deployment (resources, else its endpoint)."""
    listed = [str(u) for u in (resources or {}).get("endpoints") or [] if u]
    return listed or ([endpoint_url] if endpoint_url else [])


@dataclass
class Woken:
    """What a wake did: the endpoints (as the provider reports them) that answered; when the wake
    started, when an instance first reported an endpoint (running) and when one answered ready
    (``time.time()`` seconds, comparable across processes)."""

    endpoints: list[str]
    started_at: float
    running_at: float
    ready_at: float

    def timings(self) -> dict[str, float]:
        return {
            "started_at": self.started_at,
            "running_at": self.running_at,
            "ready_at": self.ready_at,
            "start_to_running_s": self.running_at - self.started_at,
            "running_to_ready_s": self.ready_at - self.running_at,
        }

    def summary(self) -> str:
        return (
            f"instance running after {self.running_at - self.started_at:.1f} s, "
            f"ready {self.ready_at - self.running_at:.1f} s later"
        )


@dataclass
class RemoteTargets:
    """The clouds as the gateway sees them: providers by target name, and how to reach an endpoint."""

    #: (target name, deployment name) → the provider that runs it
    provider_for: Callable[[str, str], Any]
    token_for: Callable[[str], str | None] = lambda name: None
    #: deployment name → the client TLS context that trusts only its pinned certificate (None: HTTP)
    tls_for: Callable[[str], Any] = lambda name: None
    reach: Callable[[str], str] = lambda url: url
    poll_s: float = 1.0
    health_timeout_s: float = 2.0
    #: (deployment, notice payload) → how the notice went on ("prefect" or "in-process"); must
    #: return at once (a rebalance runs in the background)
    on_interruption: Callable[[str, dict[str, Any]], str] | None = None

    async def wake(self, provider: str, name: str, deadline_s: float) -> Woken:
        """Wake ``name`` on its target and wait until one endpoint is ready (ServingError if not)."""
        loop = asyncio.get_running_loop()
        started_at = time.time()
        target = await loop.run_in_executor(None, self.provider_for, provider, name)
        await loop.run_in_executor(None, target.wake, name)
        deadline = time.monotonic() + deadline_s
        running_at: float | None = None
        while time.monotonic() < deadline:
            status = await loop.run_in_executor(None, target.status, name)
            urls = endpoints_of(status.details, status.endpoint_url)
            if urls and running_at is None:
                running_at = time.time()
            ready = [u for u in urls if await self.ready(self.reach(u))]
            if ready:
                return Woken(ready, started_at, running_at or time.time(), time.time())
            await asyncio.sleep(self.poll_s)
        raise ServingError(
            f"no replica of {name!r} on {provider} answered /v2/health/ready within {deadline_s:g} s",
            hint=f"see `thrifty status {name}` and the instance's boot log",
        )

    async def scale(self, provider: str, name: str, replicas: int) -> Any:
        loop = asyncio.get_running_loop()
        target = await loop.run_in_executor(None, self.provider_for, provider, name)
        return await loop.run_in_executor(None, target.scale, name, replicas)

    async def ready(self, url: str) -> bool:
        """The endpoint's OIP readiness, probed as a kubelet or a load balancer does: no token sent,
        an https replica's certificate not checked (requests then go through the pinned one)."""
        try:
            async with httpx.AsyncClient(
                timeout=self.health_timeout_s, trust_env=False, verify=False
            ) as client:
                return (await client.get(f"{url}/v2/health/ready")).status_code == 200
        except httpx.HTTPError:
            return False
