"""Tokens with roles, 401/403 naming the role, loopback-only without tokens, the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from thrifty import access


def _token(role: str) -> str:
    from thrifty import runtime

    return access.create_token(runtime.registry(), f"{role}-bot", role)[1]


def _as(http: httpx.Client, token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def test_no_token_at_all_serves_loopback_as_admin(http: httpx.Client) -> None:
    assert http.get("/tokens").status_code == 200  # admin-only, answered for this machine


def test_a_remote_client_is_refused_while_no_token_exists(thrifty_home: Path) -> None:
    from starlette.requests import Request

    from thrifty import runtime
    from thrifty.api import create_app
    from thrifty.api.deps import require
    from thrifty.errors import AccessError

    app = create_app(runtime.get_settings())
    scope = {"type": "http", "app": app, "headers": [], "client": ("203.0.113.9", 5555), "method": "GET"}
    with pytest.raises(AccessError, match=r"203\.0\.113\.9 refused") as caught:
        require("viewer")(Request(scope))
    assert caught.value.status == 403 and "tokens create" in (caught.value.hint or "")


def test_roles_are_ordered_and_refusals_name_the_role(http: httpx.Client, thrifty_home: Path) -> None:
    viewer, deployer, admin = _token("viewer"), _token("deployer"), _token("admin")
    missing = http.get("/models")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert http.get("/models", headers=_as(http, "thr_wrong")).status_code == 401
    assert http.get("/models", headers=_as(http, viewer)).status_code == 200
    write = http.post("/deployments/local", json={"ref": "m/v"}, headers=_as(http, viewer))
    assert write.status_code == 403 and "'deployer'" in write.json()["message"]
    assert "--role deployer" in write.json()["fix"]
    as_deployer = http.post("/deployments/local", json={"ref": "m/v"}, headers=_as(http, deployer))
    assert as_deployer.status_code == 404  # past the role check: the variant does not exist
    tokens = http.get("/tokens", headers=_as(http, deployer))
    assert tokens.status_code == 403 and "'admin'" in tokens.json()["message"]
    assert {t["role"] for t in http.get("/tokens", headers=_as(http, admin)).json()} == set(access.ROLES)


def test_tokens_are_stored_hashed_and_revocation_is_immediate(http: httpx.Client, thrifty_home: Path) -> None:
    admin = _token("admin")
    made = http.post("/tokens", json={"name": "ci", "role": "viewer"}, headers=_as(http, admin)).json()
    secret = made["token"]
    db = (thrifty_home / "registry.db").read_bytes()
    assert secret.encode() not in db and made["prefix"] == secret[:10]
    assert http.get("/models", headers=_as(http, secret)).status_code == 200
    assert http.delete(f"/tokens/{made['id']}", headers=_as(http, admin)).status_code == 200
    assert http.get("/models", headers=_as(http, secret)).status_code == 401
    bad_role = http.post("/tokens", json={"name": "x", "role": "root"}, headers=_as(http, admin))
    assert bad_role.status_code == 400 and "viewer, deployer, admin" in bad_role.json()["fix"]


def test_every_write_is_audited_with_before_and_after(http: httpx.Client, thrifty_home: Path) -> None:
    admin, viewer = _token("admin"), _token("viewer")
    made = http.post("/tokens", json={"name": "ci", "role": "viewer"}, headers=_as(http, admin)).json()
    http.delete(f"/tokens/{made['id']}", headers=_as(http, admin))
    http.post("/deployments/x/hibernate", headers=_as(http, viewer))  # refused: audited as such
    entries = http.get("/audit", headers=_as(http, admin)).json()["items"]
    revoke, create = entries[1], entries[2]
    assert (create["actor"], create["action"], create["after"]["role"]) == (
        "admin-bot",
        "tokens.create",
        "viewer",
    )
    assert revoke["before"] == {"revoked_at": None} and revoke["after"]["revoked_at"]
    refused = entries[0]
    assert (refused["actor"], refused["outcome"]) == ("viewer-bot", "refused")
    assert (
        refused["action"] == "POST /api/v1/deployments/x/hibernate"
        and "deployer" in refused["after"]["message"]
    )
    assert http.get("/audit", headers=_as(http, viewer)).status_code == 403


def test_tokens_cli_makes_lists_and_revokes(thrifty_home: Path) -> None:
    from typer.testing import CliRunner

    from thrifty import runtime
    from thrifty.cli import app

    runner = CliRunner()
    made = runner.invoke(app, ["tokens", "create", "--role", "deployer", "--name", "ci", "--json"])
    assert made.exit_code == 0, made.output
    token = json.loads(made.output)
    assert access.authenticate(runtime.registry(), token["token"]).role == "deployer"
    listed = json.loads(runner.invoke(app, ["tokens", "list", "--json"]).output)
    assert [(t["name"], t["role"]) for t in listed] == [("ci", "deployer")]
    assert runner.invoke(app, ["tokens", "revoke", str(token["id"])]).exit_code == 0
    assert json.loads(runner.invoke(app, ["tokens", "list", "--json"]).output) == []
    bad = runner.invoke(app, ["tokens", "create", "--role", "root"])
    assert bad.exit_code == 1 and "viewer, deployer, admin" in str(bad.exception)  # main() prints it


def test_migration_0002_on_sqlite_and_postgresql(database_url: str) -> None:
    from sqlalchemy import inspect
    from sqlalchemy.exc import IntegrityError

    from thrifty.registry import Registry
    from thrifty.registry.access import ApiOperation

    registry = Registry.from_url(database_url)
    try:
        tables = set(inspect(registry.engine).get_table_names())
        assert {
            "api_tokens",
            "audit_log",
            "api_operations",
            "webhook_subscriptions",
            "webhook_deliveries",
        } <= tables
        _row, secret = access.create_token(registry, "ci", "deployer")
        assert access.authenticate(registry, secret).role == "deployer" and access.any_tokens(registry)
        access.audit(registry, "ci", "x.y", "t", before={"a": 1}, after={"a": 2})
        assert access.list_audit(registry)[0][0].after == {"a": 2}
        first = {"kind": "deploy", "flow": "f/f", "target": "m", "active_target": "m", "created_by": "ci"}
        with registry.session() as s:
            s.add(ApiOperation(id="a" * 32, **first))
        with pytest.raises(IntegrityError), registry.session() as s:  # one running operation per name
            s.add(ApiOperation(id="b" * 32, **first))
        with registry.session() as s:  # finished ones (NULL lock) may be many
            s.add_all([ApiOperation(id=c * 32, **(first | {"active_target": None})) for c in "cd"])
    finally:
        registry.engine.dispose()


def test_without_tokens_the_dashboard_answers_this_machine_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # while no API token exists: a client elsewhere gets a 403 with the fix, loopback gets the page
    import asyncio

    from thrifty.api.app import create_app

    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path / "home"))
    app = create_app()

    async def get(peer: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://thrifty") as client:
            return await client.get("/")

    elsewhere = asyncio.run(get("203.0.113.9"))
    assert elsewhere.status_code == 403 and "SSH tunnel" in elsewhere.text
    assert asyncio.run(get("127.0.0.1")).status_code == 200
