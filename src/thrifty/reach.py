"""How the control plane reaches a deployment's endpoint: an httpx client that trusts only the
certificate the registry pinned for it (``thrifty.tls.client_context``) and, where configured,
sends a host's traffic to another address — curl's ``--resolve HOST:PORT:ADDRESS`` as a setting
(``THRIFTY_RESOLVE='["*:8443:127.0.0.1"]'``): a bastion's tunnel, a VPN's address, or the
rehearsal's loopback port standing in for an instance's IP. The URL keeps its host (logs and the
registry say where the endpoint is); only the connection goes elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from thrifty.errors import ConfigError


def parse_rules(rules: Sequence[str]) -> dict[tuple[str, int], str]:
    """``HOST:PORT:ADDRESS`` rules (HOST may be ``*``) → {(host, port): address}."""
    parsed: dict[tuple[str, int], str] = {}
    for rule in rules:
        host, _, rest = rule.partition(":")
        port, _, address = rest.partition(":")
        if not host or not port.isdigit() or not address:
            raise ConfigError(
                f"THRIFTY_RESOLVE rule {rule!r} is not HOST:PORT:ADDRESS",
                hint="e.g. 203.0.113.7:8443:127.0.0.1 or *:8443:127.0.0.1",
            )
        parsed[(host, int(port))] = address
    return parsed


class ResolvingTransport(httpx.HTTPTransport):
    """An httpx transport that connects to the rule's address instead of the URL's host."""

    def __init__(self, rules: Mapping[tuple[str, int], str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rules = dict(rules)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        address = self.rules.get((request.url.host, port)) or self.rules.get(("*", port))
        if address is not None:
            request.url = request.url.copy_with(host=address)
        return super().handle_request(request)


def endpoint_client(
    spec: Mapping[str, Any] | None, rules: Sequence[str] = (), timeout_s: float = 30.0
) -> httpx.Client:
    """A client for the deployment whose registry spec is ``spec``: pinned TLS when the spec pins a
    certificate (``serving.tls_cert_sha256`` and ``serving.tls_cert_pem``), plain HTTP otherwise."""
    from thrifty.tls import client_context

    serving = (spec or {}).get("serving") or {}
    verify: Any = True
    if serving.get("tls_cert_sha256"):
        verify = client_context(str(serving.get("tls_cert_pem", "")), str(serving["tls_cert_sha256"]))
    transport = ResolvingTransport(parse_rules(rules), verify=verify)
    return httpx.Client(transport=transport, verify=verify, timeout=timeout_s)
