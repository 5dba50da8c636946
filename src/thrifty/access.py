"""API tokens with roles, and the audit log of every write.

Roles are ordered: ``viewer`` reads, ``deployer`` also deploys and changes deployments, ``admin``
also manages tokens and webhooks. A token is shown once when made; the registry keeps its sha256
digest only (as the inference server's ``sha256:`` tokens). With no token made yet, the API serves
loopback clients only, as the inference server does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from thrifty.errors import AccessError, ConfigError, NotFoundError
from thrifty.registry.access import ApiToken, AuditEntry

if TYPE_CHECKING:
    from thrifty.registry import Registry

ROLES = ("viewer", "deployer", "admin")
TOKEN_PREFIX = "thr_"


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role {role!r} does not exist", hint=f"use one of {', '.join(ROLES)}")
    return role


def role_allows(have: str, need: str) -> bool:
    return ROLES.index(have) >= ROLES.index(check_role(need))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name and role, or the loopback caller when no token exists."""

    name: str
    role: str
    token_id: int | None = None

    def require(self, need: str) -> None:
        if not role_allows(self.role, need):
            raise AccessError(
                f"this operation needs the {need!r} role; token {self.name!r} has {self.role!r}",
                hint=f"use a token made with `thrifty tokens create --role {need}` (or higher)",
                status=403,
            )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(registry: Registry, name: str, role: str) -> tuple[ApiToken, str]:
    """A new token: the row (digest only) and the secret, which is never stored."""
    check_role(role)
    if not name.strip() or len(name) > 100:
        raise ConfigError(f"token name {name!r}", hint="give 1–100 characters, e.g. --name ci")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role, token_sha256=_digest(secret), prefix=secret[:10])
    with registry.session() as s:
        s.add(row)
        s.flush()
    return row, secret


def list_tokens(registry: Registry, include_revoked: bool = False) -> list[ApiToken]:
    with registry.session() as s:
        query = select(ApiToken).order_by(ApiToken.id)
        if not include_revoked:
            query = query.where(ApiToken.revoked_at.is_(None))
        return list(s.scalars(query))


def revoke_token(registry: Registry, token_id: int) -> ApiToken:
    with registry.session() as s:
        row = s.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            raise NotFoundError(f"no live API token with id {token_id}", hint="see `thrifty tokens list`")
        row.revoked_at = datetime.now(UTC)
        return row


def any_tokens(registry: Registry) -> bool:
    with registry.session() as s:
        count = s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None)))
        return bool(count)


def authenticate(registry: Registry, token: str) -> Principal:
    """The principal of a bearer token, or AccessError(401)."""
    digest = _digest(token.strip())
    with registry.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest))
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_sha256, digest):
            raise AccessError(
                "invalid or revoked API token", hint="make one with `thrifty tokens create --role viewer`"
            )
        row.last_used_at = datetime.now(UTC)
        return Principal(name=row.name, role=row.role, token_id=row.id)


def audit(
    registry: Registry,
    actor: str,
    action: str,
    target: str = "",
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    outcome: str = "ok",
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor, action=action, target=target[:300], before=before, after=after, outcome=outcome
    )
    with registry.session() as s:
        s.add(entry)
        s.flush()
    return entry


def list_audit(registry: Registry, *, offset: int = 0, limit: int = 50) -> tuple[list[AuditEntry], int]:
    """Newest first, one page, and how many entries there are."""
    with registry.session() as s:
        total = int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
        return list(s.scalars(query)), total
