"""Entry point of the gateway process that the daemon supervises: ``python -m thrifty.serving.gateway_main``."""

from __future__ import annotations

import logging
from typing import Any

from thrifty import runtime, tokens
from thrifty.errors import NotFoundError
from thrifty.serving.gateway import GatewayConfig, run_gateway
from thrifty.serving.http import run
from thrifty.serving.remote import RemoteTargets
from thrifty.settings import Settings, get_settings


def gateway_config(settings: Settings) -> GatewayConfig:
    return GatewayConfig(
        host=settings.gateway_host,
        port=settings.gateway_port,
        api_tokens=tuple(t.get_secret_value() for t in settings.api_tokens),
        max_body_bytes=settings.serving_max_body_bytes,
        wake_timeout_s=settings.gateway_wake_timeout_s,
        warm_pool_size=settings.gateway_warm_pool_size,
    )


def remote_targets(settings: Settings) -> RemoteTargets:
    """The clouds as the CLI reaches them (each SDK's usual credential chain, the deployment's region)."""

    def provider_for(provider: str, name: str) -> Any:
        from thrifty.providers.commands import build_provider

        region = runtime.registry(settings).get_deployment(name).region
        return build_provider(provider, {"region": region})

    def token_for(name: str) -> str | None:
        try:
            return tokens.token_for(settings.home, name)
        except NotFoundError:  # deployed from another machine: its replicas will refuse us
            return None

    return RemoteTargets(provider_for=provider_for, token_for=token_for)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    registry = runtime.registry(settings)
    run(run_gateway(gateway_config(settings), registry, remote=remote_targets(settings)))


if __name__ == "__main__":
    main()
