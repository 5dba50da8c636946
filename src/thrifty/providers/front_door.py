"""The gateway process the daemon runs: local replicas and, through the providers, cloud ones.

``python -m thrifty.providers.front_door`` is ``thrifty.serving.gateway_main`` plus the clouds:
serving never imports providers, so the one process that needs both starts here. A cloud
deployment's provider is built as the CLI builds it (each SDK's usual credential chain, the
deployment's region); its replicas are called with the token this machine issued at deploy.

A spot VM's watcher posts its interruption notice here (``InterruptionHandler``): the Prefect
event ``thrifty.spot.interruption`` when a Prefect API is configured, else the rebalance in-process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from thrifty import runtime, tokens
from thrifty.errors import NotFoundError, ThriftyError
from thrifty.providers.aws_interruption import InterruptionNotice, _parse_time, installed_emitter
from thrifty.providers.base import Replica
from thrifty.providers.rebalance import Executor, Outcome, rebalance_deployment, record_switch
from thrifty.registry import Registry
from thrifty.serving.gateway import run_gateway
from thrifty.serving.gateway_main import gateway_config
from thrifty.serving.http import run
from thrifty.serving.remote import RemoteTargets
from thrifty.settings import Settings, get_settings

log = logging.getLogger("thrifty.providers.front_door")


def remote_targets(settings: Settings) -> RemoteTargets:
    """The clouds as the CLI reaches them, and each deployment's token from ``THRIFTY_HOME``."""

    def provider_for(provider: str, name: str) -> Any:
        from thrifty.providers.operate import provider_for_deployment

        # after an update the target knows the live revision as NAME-rN
        return provider_for_deployment(runtime.registry(settings), name, provider)

    def token_for(name: str) -> str | None:
        try:
            return tokens.token_for(settings.home, name)
        except NotFoundError:  # deployed from another machine: its replicas will refuse us
            return None

    def tls_for(name: str) -> Any:
        from thrifty.tls import client_context

        serving = (runtime.registry(settings).get_deployment(name).spec or {}).get("serving") or {}
        if not serving.get("tls_cert_sha256"):
            return None
        return client_context(str(serving.get("tls_cert_pem", "")), str(serving["tls_cert_sha256"]))

    remote = RemoteTargets(provider_for=provider_for, token_for=token_for, tls_for=tls_for)
    remote.on_interruption = interruption_handler(settings, remote)
    return remote


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    registry = runtime.registry(settings)
    run(run_gateway(gateway_config(settings), registry, remote=remote_targets(settings)))


@dataclass
class InterruptionHandler:
    """What the front door does with a VM's interruption notice: the ``thrifty.spot.interruption``
    Prefect event when a Prefect API is configured (its automation runs ``spot-rebalance``), else
    the same rebalance pass in-process, in the background (replace → verify → switch → drain)."""

    registry: Registry
    provider_for: Callable[[str, str], Any]
    health_check: Callable[[Replica], bool]
    emit: Callable[[InterruptionNotice], Any] | None = None
    drain_wait_s: float = 10.0
    health_poll_s: float = 1.0
    threads: list[threading.Thread] = field(default_factory=list)

    def __call__(self, name: str, payload: dict[str, Any]) -> str:
        notice = InterruptionNotice(
            cloud=str(payload.get("cloud") or ""),
            deployment=name,
            instance_id=str(payload["instance_id"]),
            action=str(payload.get("action") or "terminate"),
            at=_parse_time(payload.get("at")),
        )
        if self.emit is not None:
            self.emit(notice)
            return "prefect"
        thread = threading.Thread(
            target=self.rebalance, args=(notice,), name=f"rebalance-{name}", daemon=True
        )
        self.threads.append(thread)
        thread.start()
        return "in-process"

    def rebalance(self, notice: InterruptionNotice) -> list[Outcome]:
        """One rebalance pass for the noticed instance; a failure is a deployment event, not a crash."""
        row = self.registry.get_deployment(notice.deployment)
        executor = Executor(
            provider=self.provider_for(row.provider, notice.deployment),
            health_check=self.health_check,
            switch_traffic=lambda name, replicas: record_switch(self.registry, name, replicas),
            sleep=time.sleep,
            drain_wait_s=self.drain_wait_s,
            health_poll_s=self.health_poll_s,
        )
        try:
            return rebalance_deployment(
                executor,
                self.registry,
                notice.deployment,
                region=row.region,
                noticed_ids=[notice.instance_id],
            )
        except ThriftyError as exc:
            log.error("%s: rebalance after the notice failed: %s", notice.deployment, exc.message)
            self.registry.add_event(notice.deployment, "rebalance.failed", f"{exc.message} ({exc.hint})")
            return []


def http_health(reach: Callable[[str], str]) -> Callable[[Replica], bool]:
    """A replica is healthy when ``/v2/health/ready`` at its (reachable) endpoint answers 200."""

    def check(replica: Replica) -> bool:
        if not replica.endpoint_url:
            return False
        try:
            answer = httpx.get(f"{reach(replica.endpoint_url)}/v2/health/ready", timeout=2.0, trust_env=False)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    return check


def interruption_handler(settings: Settings, remote: RemoteTargets) -> InterruptionHandler:
    """Prefect's event when ``PREFECT_API_URL`` names a server (and the Prefect layer is installed)."""
    emit = installed_emitter() if os.environ.get("PREFECT_API_URL") else None
    return InterruptionHandler(
        registry=runtime.registry(settings),
        provider_for=remote.provider_for,
        health_check=http_health(remote.reach),
        emit=emit,
    )


if __name__ == "__main__":
    main()
