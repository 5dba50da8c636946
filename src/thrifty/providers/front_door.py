"""The gateway process the daemon runs: local replicas and, through the providers, cloud ones.

``python -m thrifty.providers.front_door`` is ``thrifty.serving.gateway_main`` plus the clouds:
serving never imports providers, so the one process that needs both starts here. A cloud
deployment's provider is built as the CLI builds it (each SDK's usual credential chain, the
deployment's region); its replicas are called with the token this machine issued at deploy.
"""

from __future__ import annotations

import logging
from typing import Any

from thrifty import runtime, tokens
from thrifty.errors import NotFoundError
from thrifty.serving.gateway import run_gateway
from thrifty.serving.gateway_main import gateway_config
from thrifty.serving.http import run
from thrifty.serving.remote import RemoteTargets
from thrifty.settings import Settings, get_settings


def remote_targets(settings: Settings) -> RemoteTargets:
    """The clouds as the CLI reaches them, and each deployment's token from ``THRIFTY_HOME``."""

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
