"""Per-deployment API tokens: made at deploy time, kept where only this control plane reads them.

A cloud deployment's replicas get the token's sha256 digest (``DeploySpec.serving["token_sha256"]``,
stored in the registry with the spec): they can check a request's token but could not send one.
Where the target has a secret store the digest travels with the TLS key through it (``thrifty.tls``);
elsewhere it may travel in user data. The token itself is written once, mode 0600,
under ``THRIFTY_HOME/secrets/deployments/`` — never into the registry, the user data, a log or an
artifact — and read back by the smoke test and the gateway that call the deployment.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from thrifty.errors import NotFoundError


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def notice_token(token: str, deployment: str) -> str:
    """The credential a deployment's VMs post interruption notices with (to the front door).

    Derived from the token by HMAC: it may travel in user data like the digest, it authorizes
    nothing but a notice for ``deployment``, and it cannot be turned back into the token.
    """
    return hmac.new(token.encode(), f"thrifty-interruption:{deployment}".encode(), hashlib.sha256).hexdigest()


def _path(home: Path, deployment: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in deployment)
    return home / "secrets" / "deployments" / f"{safe}.token"


def token_path(home: Path, deployment: str) -> Path:
    """Where deployment ``deployment``'s token is kept on this machine (0600)."""
    return _path(home, deployment)


def issue(home: Path, deployment: str) -> str:
    """The deployment's token digest; the token is made (once) and stored 0600 under ``home``."""
    path = _path(home, deployment)
    if path.is_file():
        return digest(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    tmp.replace(path)
    return digest(token)


def token_for(home: Path, deployment: str) -> str:
    """The token that calls ``deployment``; NotFoundError when this machine did not deploy it."""
    path = _path(home, deployment)
    if not path.is_file():
        raise NotFoundError(
            f"no API token for deployment {deployment!r} on this machine",
            hint="redeploy it from here (each deployment's token lives under THRIFTY_HOME/secrets)",
        )
    return path.read_text().strip()


def forget(home: Path, deployment: str) -> None:
    _path(home, deployment).unlink(missing_ok=True)
