"""Bearer-token check shared by the server and the gateway.

With tokens configured, every request except health checks needs ``Authorization: Bearer <token>``.
A configured token ``sha256:<hex>`` is a digest: the server then never holds the token itself.
With none configured, only loopback clients are served (a server bound to a public address by
mistake still answers nobody else).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from thrifty.serving.http import Request, Response, error_response

LOOPBACK_HINT = "set THRIFTY_API_TOKENS to accept remote clients with a bearer token"


def is_loopback(peer: str) -> bool:
    if peer == "unix":
        return True
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def bearer(request: Request) -> bytes | None:
    """The request's bearer token, or None when it sends none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token.encode() if scheme.lower() == "bearer" and token else None


def check(request: Request, tokens: tuple[bytes, ...]) -> Response | None:
    """None when the request may proceed, else the 401/403 response to send."""
    if not tokens:
        if is_loopback(request.peer):
            return None
        return error_response(
            403, f"client {request.peer} refused: no API tokens are configured ({LOOPBACK_HINT})"
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = [("www-authenticate", 'Bearer realm="thrifty"')]
    if scheme.lower() != "bearer" or not token:
        return error_response(401, "missing bearer token: send 'Authorization: Bearer <token>'", challenge)
    given = token.strip().encode()
    digest = b"sha256:" + hashlib.sha256(given).hexdigest().encode()
    if any(hmac.compare_digest(digest if known.startswith(b"sha256:") else given, known) for known in tokens):
        return None
    return error_response(401, "invalid bearer token", challenge)
