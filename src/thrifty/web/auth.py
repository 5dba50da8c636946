"""Who may see the dashboard, and what they may change: the login page, the gate every page passes,
and the role check on every write.

- No API token exists: today's rule. The dashboard answers this machine only (the peer check,
  loopback by default, injectable in ``install``) and that caller is ``admin``; anyone else gets a
  403 page that says how to make a token.
- Tokens exist: every browser logs in with one, loopback included (a reverse proxy on this machine
  forwards everybody's requests from loopback, so loopback is not a person). The session
  (``thrifty.web.sessions``) carries the token's name and role.
- Roles: a ``viewer`` sees every page; the writes (deploy, apply a recommendation, upload a model,
  the playground) need ``deployer``. The playground counts as a write: the server sends the
  inference with its own gateway token, on capacity that is paid for, so a viewer would borrow a
  credential it does not hold. A write without the role is refused with a 403 page naming the role,
  and audited; every write done is audited with the logged-in token's name.
- Failed logins: a peer that failed ``LOGIN_FAILURES_ALLOWED`` times within ``LOGIN_WINDOW_S`` is
  answered 429 with the wait, without its token being checked or audited, until the oldest failure
  leaves the window. Tokens are 256-bit, so this guards the audit log and the server, not the secret.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from thrifty import access
from thrifty.access import Principal
from thrifty.errors import AccessError, ThriftyError
from thrifty.registry import Registry
from thrifty.serving.auth import is_loopback
from thrifty.web import sessions
from thrifty.web.base import CSRF_COOKIE, RegistryDep, check_csrf, error_panel, is_https, render

#: does this request come from this machine? (``install`` takes another, e.g. for a test of a remote peer)
LocalPeer = Callable[[Request], bool]
LOOPBACK_ADMIN = Principal(name="loopback", role="admin")
#: the role every dashboard write needs
WRITE_ROLE = "deployer"
router = APIRouter()
#: failed logins one peer may make within ``LOGIN_WINDOW_S`` seconds before it has to wait
LOGIN_FAILURES_ALLOWED = 10
LOGIN_WINDOW_S = 300.0


class LoginThrottle:
    """Failed logins per peer over a sliding window (in memory, per dashboard process)."""

    def __init__(self, allowed: int | None = None, window_s: float | None = None) -> None:
        self.allowed = LOGIN_FAILURES_ALLOWED if allowed is None else allowed
        self.window_s = LOGIN_WINDOW_S if window_s is None else window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, peer: str) -> float:
        """How long ``peer`` must wait before its next try (0: it may try now)."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(peer)
            while failures and now - failures[0] >= self.window_s:
                failures.popleft()
            if not failures or len(failures) < self.allowed:
                return 0.0
            return self.window_s - (now - failures[0])

    def failed(self, peer: str) -> None:
        with self._lock:
            self._failures.setdefault(peer, deque()).append(time.monotonic())

    def succeeded(self, peer: str) -> None:
        with self._lock:
            self._failures.pop(peer, None)


def loopback_peer(request: Request) -> bool:
    return is_loopback(request.client.host if request.client else "")


def _local_peer(request: Request) -> LocalPeer:
    found: LocalPeer | None = getattr(request.app.state, "dashboard_local_peer", None)
    return found or loopback_peer


class Refused(Exception):
    """The gate's answer instead of a page: to the login page (``login_next``) or an error panel."""

    def __init__(self, *, login_next: str | None = None, error: AccessError | None = None) -> None:
        super().__init__(error.message if error else f"login needed for {login_next}")
        self.login_next = login_next
        self.error = error


def current(request: Request, registry: Registry) -> Principal | None:
    """The logged-in principal, the loopback admin while no token exists, or None."""
    found = sessions.principal_for(registry, request.cookies.get(sessions.SESSION_COOKIE, ""))
    if found is not None:
        return found
    if not access.any_tokens(registry) and _local_peer(request)(request):
        return LOOPBACK_ADMIN
    return None


def signed_in(request: Request, registry: RegistryDep) -> Principal:
    """The gate of every page and write (a FastAPI dependency)."""
    principal = current(request, registry)
    if principal is not None:
        request.state.principal = principal
        return principal
    if access.any_tokens(registry):
        raise Refused(login_next=request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    peer = request.client.host if request.client else "unknown"
    raise Refused(
        error=AccessError(
            f"the dashboard answers this machine only while no API token exists (client {peer})",
            hint="on the server, make a token with `thrifty tokens create --role viewer` and log in with it; "
            "or open it through an SSH tunnel: ssh -L 8080:127.0.0.1:8080 SERVER",
            status=403,
        )
    )


def require_role(request: Request, registry: Registry, role: str = WRITE_ROLE) -> Principal:
    """The signed-in principal if its role allows ``role``; else AccessError(403), audited as refused."""
    principal: Principal = request.state.principal
    try:
        principal.require(role)
    except AccessError as exc:
        action = f"dashboard {request.method} {request.url.path}"
        access.audit(registry, principal.name, action, after={"message": exc.message}, outcome="refused")
        raise
    return principal


def _answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    partial = bool(request.headers.get("hx-request"))
    if exc.error is not None:
        return error_panel(request, exc.error, partial=partial)
    target = "/login?" + urlencode({"next": exc.login_next or "/"})
    if partial:  # an htmx request (the playground) whose session ended: htmx loads the login page
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def install(app: FastAPI, local_peer: LocalPeer | None = None) -> None:
    """Make ``app`` answer the gate's refusals as pages; ``local_peer`` decides who is this machine."""
    app.state.dashboard_local_peer = local_peer or loopback_peer
    app.state.dashboard_login_throttle = LoginThrottle()
    app.add_exception_handler(Refused, _answer)


def safe_next(target: str) -> str:
    """Where to go after login: a path on this dashboard only (never another host, never /login)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return "/" if parts.path in ("/login", "/logout") else target


def _login_page(
    request: Request, registry: Registry, next_url: str, error: ThriftyError | None = None, status: int = 200
) -> HTMLResponse:
    context: dict[str, Any] = {
        "next": safe_next(next_url),
        "tokens_exist": access.any_tokens(registry),
        "login_error": error,
    }
    return render(request, "login.html", context, status_code=status)


@router.get("/login", response_class=HTMLResponse, response_model=None)
def login_form(request: Request, registry: RegistryDep, next: str = "/") -> Response:
    if sessions.principal_for(registry, request.cookies.get(sessions.SESSION_COOKIE, "")) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, registry, next)


def _refused_login(request: Request, registry: Registry, exc: ThriftyError) -> None:
    if isinstance(exc, AccessError):  # a wrong token: who tried, from where (never the token)
        peer = request.client.host if request.client else "unknown"
        access.audit(registry, f"anonymous@{peer}", "dashboard.login", after={"message": exc.message},
                     outcome="refused")  # fmt: skip


@router.post("/login", response_model=None)
def login(
    request: Request,
    registry: RegistryDep,
    csrf_token: Annotated[str, Form()],
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the token against the hashed store; a session cookie and the page asked for, or the
    login page again with the reason (401; 429 after too many failures from this peer)."""
    peer = request.client.host if request.client else "unknown"
    throttle: LoginThrottle = request.app.state.dashboard_login_throttle
    wait_s = throttle.wait_s(peer)
    if wait_s > 0:
        busy = AccessError(
            f"too many failed logins from {peer}: {throttle.allowed} within {throttle.window_s:g} s",
            hint=f"wait {math.ceil(wait_s)} s, then paste a token made with `thrifty tokens create`",
            status=429,
        )
        return _login_page(request, registry, next, busy, 429)
    try:
        check_csrf(request, csrf_token)
        if not token.strip():
            raise AccessError(
                "no token given", hint="paste a token made with `thrifty tokens create --role viewer`"
            )
        principal, session_id, expires_at = sessions.start(registry, token)
    except ThriftyError as exc:
        _refused_login(request, registry, exc)
        if isinstance(exc, AccessError):
            throttle.failed(peer)
        return _login_page(request, registry, next, exc, 401 if isinstance(exc, AccessError) else 400)
    throttle.succeeded(peer)
    access.audit(registry, principal.name, "dashboard.login", principal.name,
                 after={"role": principal.role, "expires_at": expires_at.isoformat()})  # fmt: skip
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        sessions.SESSION_COOKIE, session_id, max_age=sessions.SESSION_TTL_S, expires=expires_at, path="/",
        httponly=True, samesite="strict", secure=is_https(request),
    )  # fmt: skip
    response.delete_cookie(CSRF_COOKIE, path="/")  # a fresh CSRF token for the logged-in pages
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, registry: RegistryDep, csrf_token: Annotated[str, Form()]) -> Response:
    """End the session on the server and in the browser; back to the login page."""
    try:
        check_csrf(request, csrf_token)
    except ThriftyError as exc:
        return error_panel(request, exc)
    session_id = request.cookies.get(sessions.SESSION_COOKIE, "")
    who = sessions.principal_for(registry, session_id)
    if sessions.end(registry, session_id) and who is not None:
        access.audit(registry, who.name, "dashboard.logout", who.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response
