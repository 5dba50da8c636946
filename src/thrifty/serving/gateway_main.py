"""Entry point of the gateway process that the daemon supervises: ``python -m thrifty.serving.gateway_main``."""

from __future__ import annotations

import logging

from thrifty import runtime
from thrifty.serving.gateway import GatewayConfig, run_gateway
from thrifty.serving.http import run
from thrifty.serving.public import public_listener
from thrifty.settings import Settings, get_settings


def gateway_config(settings: Settings) -> GatewayConfig:
    return GatewayConfig(
        host=settings.gateway_host,
        port=settings.gateway_port,
        api_tokens=tuple(t.get_secret_value() for t in settings.api_tokens),
        max_body_bytes=settings.serving_max_body_bytes,
        wake_timeout_s=settings.gateway_wake_timeout_s,
        warm_pool_size=settings.gateway_warm_pool_size,
        public=public_listener(settings),
    )


def main() -> None:
    """The gateway for local replicas only (``thrifty.providers.front_door`` also fronts the clouds)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    run(run_gateway(gateway_config(settings), runtime.registry(settings)))


if __name__ == "__main__":
    main()
