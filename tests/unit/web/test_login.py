"""The dashboard's login rules over real HTTP (uvicorn on loopback, the real app and registry): the
session cookie's attributes, who must log in, where a login may send the browser, the role gate.
A remote peer is played by the peer check the app factories take, not by a trusted header."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from tests.unit.api.conftest import serving
from thrifty import access
from thrifty.web import auth, sessions
from thrifty.web.base import CSRF_COOKIE


def _everyone_is_local(_request: Request) -> bool:
    return True


def _nobody_is_local(_request: Request) -> bool:
    return False


Client = Callable[..., httpx.Client]


@pytest.fixture
def client(thrifty_home: Path) -> Iterator[Client]:
    """``client(local=True, api=False)``: a browser-like client of a fresh dashboard app (or the
    management API's, ``api=True``) whose peer check says every caller is local, or none is."""
    from thrifty import runtime
    from thrifty.api import create_app as api_app
    from thrifty.web.app import create_app

    with ExitStack() as stack:

        def make(local: bool = True, api: bool = False) -> httpx.Client:
            peer = _everyone_is_local if local else _nobody_is_local
            app = api_app(runtime.get_settings(), local_peer=peer) if api else create_app(local_peer=peer)
            url = stack.enter_context(serving(app))
            return stack.enter_context(httpx.Client(base_url=url, timeout=60, trust_env=False))

        yield make


def _token(role: str) -> str:
    from thrifty import runtime

    return access.create_token(runtime.registry(), f"{role}-person", role)[1]


def _login(browser: httpx.Client, token: str, next_url: str = "/", **kwargs: Any) -> httpx.Response:
    browser.get("/login", **kwargs)
    form = {"csrf_token": browser.cookies[CSRF_COOKIE], "token": token, "next": next_url}
    return browser.post("/login", data=form, **kwargs)


def _set_cookie(response: Any, name: str) -> SimpleCookie:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            return jar
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


def test_the_session_cookie_is_httponly_strict_and_expires(client: Client) -> None:
    answer = _login(client(), _token("viewer"), "/costs")
    assert answer.status_code == 303 and answer.headers["location"] == "/costs"
    morsel = _set_cookie(answer, sessions.SESSION_COOKIE)[sessions.SESSION_COOKIE]
    assert morsel["httponly"] and morsel["samesite"].lower() == "strict" and morsel["path"] == "/"
    assert int(morsel["max-age"]) == sessions.SESSION_TTL_S and morsel["expires"]
    assert not morsel["secure"]  # plain HTTP on loopback: a Secure cookie would never come back


def test_behind_an_https_proxy_the_cookies_are_secure(client: Client) -> None:
    """A TLS-terminating proxy on this machine says X-Forwarded-Proto: https (uvicorn trusts it from
    127.0.0.1 only, its default): both cookies are then Secure."""
    browser = httpx.Client(base_url=str(client().base_url), trust_env=False)  # no cookie jar use
    proxied = {"x-forwarded-proto": "https"}
    form = browser.get("/login", headers=proxied)
    csrf = _set_cookie(form, CSRF_COOKIE)[CSRF_COOKIE]
    assert csrf["secure"]
    answer = browser.post(
        "/login",
        data={"csrf_token": csrf.value, "token": _token("viewer"), "next": "/"},
        headers=proxied | {"cookie": f"{CSRF_COOKIE}={csrf.value}"},
    )
    assert answer.status_code == 303
    morsel = _set_cookie(answer, sessions.SESSION_COOKIE)[sessions.SESSION_COOKIE]
    assert morsel["secure"] and morsel["httponly"]
    page = browser.get("/", headers=proxied | {"cookie": f"{sessions.SESSION_COOKIE}={morsel.value}"})
    assert page.status_code == 200
    assert _set_cookie(page, CSRF_COOKIE)[CSRF_COOKIE]["secure"]  # the fresh CSRF cookie after login
    browser.close()


def test_without_tokens_this_machine_is_served_and_a_remote_peer_refused(client: Client) -> None:
    assert client(local=True).get("/costs").status_code == 200
    refused = client(local=False).get("/costs")
    assert refused.status_code == 403 and "answers this machine only" in refused.text
    assert "thrifty tokens create" in refused.text and "Traceback" not in refused.text
    # the management API's dashboard has the same gate, with the peer check passed to its factory
    assert client(local=False, api=True).get("/costs").status_code == 403
    assert client(local=True, api=True).get("/costs").status_code == 200


@pytest.mark.parametrize("local", [True, False])
def test_once_a_token_exists_everyone_logs_in(client: Client, local: bool) -> None:
    token = _token("viewer")
    browser = client(local=local)
    answer = browser.get("/costs?offset=0")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Fcosts%3Foffset%3D0"
    assert browser.post("/deploy", data={"csrf_token": "x", "model": "m"}).status_code == 303  # to /login too
    assert _login(browser, token, "/costs?offset=0").headers["location"] == "/costs?offset=0"
    assert browser.get("/costs").status_code == 200
    assert browser.get("/login").status_code == 303  # already in: the login page sends you on


def test_an_htmx_request_without_a_session_is_sent_to_the_login_page(client: Client) -> None:
    _token("viewer")
    answer = client().post("/deployments/x/playground", headers={"hx-request": "true"}, data={})
    assert answer.headers["hx-redirect"].startswith("/login?next=")


def test_a_wrong_token_is_refused_audited_and_sets_no_session(client: Client) -> None:
    from thrifty import runtime

    _token("viewer")
    browser = client()
    answer = _login(browser, "thr_not-a-token")
    assert answer.status_code == 401 and "invalid or revoked API token" in answer.text
    assert sessions.SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    entries, _ = access.list_audit(runtime.registry())
    assert (entries[0].action, entries[0].outcome) == ("dashboard.login", "refused")
    assert "thr_not-a-token" not in str(entries[0].after)  # the attempt, never the secret
    assert _login(browser, "   ").status_code == 401


def test_login_needs_the_forms_csrf_token(client: Client) -> None:
    browser = client()
    browser.get("/login")
    answer = browser.post("/login", data={"csrf_token": "forged", "token": _token("admin")})
    assert answer.status_code == 400 and "CSRF token does not match" in answer.text
    assert sessions.SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_logout_ends_the_session_and_the_cookie(client: Client) -> None:
    browser = client()
    _login(browser, _token("deployer"))
    session_id = browser.cookies[sessions.SESSION_COOKIE]
    browser.get("/")
    answer = browser.post("/logout", data={"csrf_token": browser.cookies[CSRF_COOKIE]})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert sessions.SESSION_COOKIE not in browser.cookies  # the browser dropped it
    browser.cookies.set(sessions.SESSION_COOKIE, session_id)  # a copy kept from before logout
    assert browser.get("/").status_code == 303


def test_a_viewer_write_is_refused_naming_the_role_and_audited(client: Client) -> None:
    from thrifty import runtime

    browser = client()
    _login(browser, _token("viewer"))
    browser.get("/deploy")
    answer = browser.post("/deploy", data={"csrf_token": browser.cookies[CSRF_COOKIE], "model": "m"})
    assert answer.status_code == 403 and "needs the &#39;deployer&#39; role" in answer.text
    entries, _ = access.list_audit(runtime.registry())
    assert (entries[0].actor, entries[0].action, entries[0].outcome) == (
        "viewer-person",
        "dashboard POST /deploy",
        "refused",
    )


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/costs?offset=50", "/costs?offset=50"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("costs", "/"),
        ("/login?next=/x", "/"),
        ("/logout", "/"),
    ],
)
def test_after_login_the_browser_goes_to_this_dashboard_only(asked: str, goes_to: str) -> None:
    assert auth.safe_next(asked) == goes_to


def _paths(router: Any, method: str) -> list[str]:
    """The router's paths for ``method``, with every path parameter filled in."""
    return [
        re.sub(r"\{[^}]+\}", "x", route.path)
        for route in router.routes
        if method in getattr(route, "methods", ())
    ]


def test_every_dashboard_write_needs_the_deployer_role(client: Client) -> None:
    """Each POST route of thrifty.web.actions, one added later included, refuses a viewer by name."""
    from thrifty.web import actions

    browser = client()
    _login(browser, _token("viewer"))
    browser.get("/")
    writes = _paths(actions.router, "POST")
    assert {"/deploy", "/models/upload", "/recommendations/apply", "/deployments/x/playground"} <= set(writes)
    for path in writes:
        answer = browser.post(path, data={"csrf_token": browser.cookies[CSRF_COOKIE], "model": "m", "body": "{}",
                                          "deployment": "x", "kind": "k"})  # fmt: skip
        assert answer.status_code == 403 and "deployer" in answer.text, (path, answer.status_code)


def test_every_dashboard_page_is_behind_the_login(client: Client) -> None:
    from thrifty.web import pages

    _token("viewer")
    browser = client()
    reads = _paths(pages.router, "GET")
    assert len(reads) >= 10
    for path in reads:
        answer = browser.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
    assert browser.get("/static/style.css").status_code == 200  # the login page's own style
    assert browser.get("/login").status_code == 200


def test_a_peer_that_keeps_failing_must_wait_and_is_not_audited_meanwhile(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After LOGIN_FAILURES_ALLOWED wrong tokens inside the window the login answers 429 with the
    wait — even for a good token, which is not checked — and writes no audit row per try; once the
    oldest failure leaves the window a good token logs in, and that success clears the count."""
    import time

    from thrifty import runtime

    monkeypatch.setattr(auth, "LOGIN_FAILURES_ALLOWED", 3)
    monkeypatch.setattr(auth, "LOGIN_WINDOW_S", 2.0)
    good = _token("viewer")
    browser = client()
    for _ in range(3):
        assert _login(browser, "thr_guess").status_code == 401
    refused = _login(browser, good)
    assert refused.status_code == 429
    assert "too many failed logins from 127.0.0.1" in refused.text and re.search(r"wait [12] s", refused.text)
    assert sessions.SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    entries, _ = access.list_audit(runtime.registry())
    assert [e.outcome for e in entries if e.action == "dashboard.login"] == ["refused"] * 3

    time.sleep(2.1)
    assert _login(browser, good).status_code == 303  # the window has passed
    browser.cookies.clear()  # signed out again, same peer, same dashboard
    for _ in range(2):  # the success cleared the count: two more failures are not yet a lock-out
        assert _login(browser, "thr_guess").status_code == 401
    assert _login(browser, "thr_guess").status_code == 401
    assert _login(browser, good).status_code == 429
