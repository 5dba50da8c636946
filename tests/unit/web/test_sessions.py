"""Dashboard sessions (migration 0003_login) on SQLite and PostgreSQL: a digest on the server, an
absolute expiry, logout and token revocation end them, a wrong token stores nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from thrifty import access
from thrifty.errors import AccessError
from thrifty.registry import Registry
from thrifty.registry.access import DashboardSession
from thrifty.web import sessions

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _rows(registry: Registry) -> list[DashboardSession]:
    with registry.session() as s:
        return list(s.scalars(select(DashboardSession)))


def test_a_login_keeps_only_the_digest_and_carries_the_tokens_role(registry: Registry) -> None:
    _, secret = access.create_token(registry, "ana", "viewer")
    principal, session_id, expires_at = sessions.start(registry, secret, now=NOW)
    assert (principal.name, principal.role) == ("ana", "viewer")
    assert expires_at == NOW + timedelta(seconds=sessions.SESSION_TTL_S)
    (row,) = _rows(registry)
    assert row.session_sha256 != session_id and session_id not in row.session_sha256
    assert len(session_id) >= 40  # 32 random bytes, url-safe
    found = sessions.principal_for(registry, session_id, now=NOW + timedelta(minutes=5))
    assert found is not None and (found.name, found.role, found.token_id) == (
        "ana",
        "viewer",
        principal.token_id,
    )


def test_a_wrong_or_revoked_token_logs_nobody_in_and_stores_nothing(registry: Registry) -> None:
    row, secret = access.create_token(registry, "bo", "deployer")
    with pytest.raises(AccessError, match="invalid or revoked") as caught:
        sessions.start(registry, secret + "x", now=NOW)
    assert caught.value.status == 401
    access.revoke_token(registry, row.id)
    with pytest.raises(AccessError):
        sessions.start(registry, secret, now=NOW)
    assert _rows(registry) == []


def test_a_session_ends_at_its_expiry(registry: Registry) -> None:
    _, secret = access.create_token(registry, "cy", "admin")
    _, session_id, expires_at = sessions.start(registry, secret, ttl_s=600, now=NOW)
    assert sessions.principal_for(registry, session_id, now=expires_at - timedelta(seconds=1)) is not None
    assert sessions.principal_for(registry, session_id, now=expires_at) is None


def test_logout_ends_the_session_on_the_server(registry: Registry) -> None:
    _, secret = access.create_token(registry, "di", "viewer")
    _, first, _ = sessions.start(registry, secret, now=NOW)
    _, second, _ = sessions.start(registry, secret, now=NOW)
    assert first != second  # every login is a new id (no fixation)
    assert sessions.end(registry, first, now=NOW) is True
    assert sessions.end(registry, first, now=NOW) is False  # already ended
    assert sessions.principal_for(registry, first, now=NOW) is None  # a copied cookie is dead too
    assert sessions.principal_for(registry, second, now=NOW) is not None  # the other browser stays in


def test_revoking_the_token_ends_its_sessions(registry: Registry) -> None:
    row, secret = access.create_token(registry, "ed", "deployer")
    _, session_id, _ = sessions.start(registry, secret, now=NOW)
    access.revoke_token(registry, row.id)
    assert sessions.principal_for(registry, session_id, now=NOW) is None


@pytest.mark.parametrize("session_id", ["", "nope", "x" * 5000])
def test_unknown_ids_are_nobody(registry: Registry, session_id: str) -> None:
    assert sessions.principal_for(registry, session_id, now=NOW) is None
    assert sessions.end(registry, session_id, now=NOW) is False


def test_a_login_clears_sessions_expired_over_a_day_ago(registry: Registry) -> None:
    _, secret = access.create_token(registry, "fi", "viewer")
    sessions.start(registry, secret, ttl_s=60, now=NOW - timedelta(days=3))
    sessions.start(registry, secret, ttl_s=60, now=NOW - timedelta(hours=2))  # expired, but recently
    sessions.start(registry, secret, now=NOW)
    with registry.session() as s:
        assert s.scalar(select(func.count()).select_from(DashboardSession)) == 2
