"""Dashboard logins: opaque server-side sessions behind an HttpOnly cookie.

A person logs in with an API token (``thrifty tokens create --role ...``). The browser then holds a
random session id (``thrifty_session`` cookie: HttpOnly, SameSite=Strict, Secure over HTTPS, an
absolute expiry); the registry keeps only its sha256 digest and the token it stands for, so the
role is the token's and revoking the token ends its sessions at once. Logout ends the session on
the server too: a copied cookie is dead after it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from thrifty import access
from thrifty.access import Principal
from thrifty.registry import Registry
from thrifty.registry.access import ApiToken, DashboardSession

SESSION_COOKIE = "thrifty_session"
#: a login lasts a working day; then the login page asks for the token again
SESSION_TTL_S = 8 * 3600
#: what a session id may look like (token_urlsafe(32) is 43 characters); anything else is not looked up
_MAX_ID_CHARS = 100


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def start(
    registry: Registry, token: str, *, ttl_s: int = SESSION_TTL_S, now: datetime | None = None
) -> tuple[Principal, str, datetime]:
    """Log in with an API token: (its principal, a new session id, when it expires). A wrong or
    revoked token raises AccessError(401) and stores nothing."""
    principal = access.authenticate(registry, token)
    session_id = secrets.token_urlsafe(32)
    expires_at = _now(now) + timedelta(seconds=ttl_s)
    row = DashboardSession(
        session_sha256=_digest(session_id),
        token_id=principal.token_id,
        created_at=_now(now),
        expires_at=expires_at,
    )
    with registry.session() as s:
        s.execute(delete(DashboardSession).where(DashboardSession.expires_at < _now(now) - timedelta(days=1)))
        s.add(row)
    return principal, session_id, expires_at


def principal_for(registry: Registry, session_id: str, *, now: datetime | None = None) -> Principal | None:
    """Who a session id belongs to, or None when it is unknown, expired, logged out or its token revoked."""
    if not session_id or len(session_id) > _MAX_ID_CHARS:
        return None
    query = (
        select(DashboardSession, ApiToken)
        .join(ApiToken, ApiToken.id == DashboardSession.token_id)
        .where(DashboardSession.session_sha256 == _digest(session_id))
    )
    with registry.session() as s:
        found = s.execute(query).first()
        if found is None:
            return None
        session, token = found
        if session.ended_at is not None or token.revoked_at is not None or session.expires_at <= _now(now):
            return None
        return Principal(name=token.name, role=token.role, token_id=token.id)


def end(registry: Registry, session_id: str, *, now: datetime | None = None) -> bool:
    """Log out: the session is dead on the server (True when there was a live one to end)."""
    if not session_id or len(session_id) > _MAX_ID_CHARS:
        return False
    with registry.session() as s:
        row = s.scalar(select(DashboardSession).where(DashboardSession.session_sha256 == _digest(session_id)))
        if row is None or row.ended_at is not None:
            return False
        row.ended_at = _now(now)
        return True
