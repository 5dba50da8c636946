"""What every dashboard page shares: dependencies, template rendering, the error panel, CSRF."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from thrifty import access, runtime
from thrifty.errors import AccessError, ConfigError, NotFoundError, ThriftyError
from thrifty.registry import Registry
from thrifty.settings import Settings, get_settings
from thrifty.web.launch import Launcher, PrefectLauncher

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
STATIC = {"htmx.min.js": "text/javascript", "style.css": "text/css"}
CSRF_COOKIE = "thrifty_csrf"


def get_registry() -> Registry:
    return runtime.registry()


def get_launcher() -> Launcher:
    return PrefectLauncher()


RegistryDep = Annotated[Registry, Depends(get_registry)]
LauncherDep = Annotated[Launcher, Depends(get_launcher)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


# -- rendering --------------------------------------------------------------------------------------
def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def _when(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


templates.env.filters.update(usd=_usd, ms=_ms, when=_when)


def _csrf(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def is_https(request: Request) -> bool:
    """Served over HTTPS (uvicorn's TLS, or X-Forwarded-Proto from a proxy it trusts): cookies get Secure."""
    return request.url.scheme == "https"


def _who(request: Request) -> dict[str, Any]:
    """The signed-in principal (set by the gate, thrifty.web.auth) and whether its role may write."""
    user = getattr(request.state, "principal", None)
    return {"user": user, "can_write": user is not None and access.role_allows(user.role, "deployer")}


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A template with the CSRF token every form posts back (a cookie set here, SameSite=Strict) and
    who is signed in (``user``, ``can_write``: the write buttons show only for a deployer or admin)."""
    token = _csrf(request)
    response = templates.TemplateResponse(
        request, name, {**context, **_who(request), "csrf_token": token}, status_code=status_code
    )
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=is_https(request))
    return response


def error_panel(request: Request, exc: Exception, partial: bool = False) -> HTMLResponse:
    """The page (or htmx fragment) that replaces a traceback: message and fix, never the stack."""
    if isinstance(exc, ThriftyError):
        status = (
            exc.status if isinstance(exc, AccessError) else 404 if isinstance(exc, NotFoundError) else 400
        )
        message, hint = exc.message, exc.hint
    else:
        log.exception("dashboard page %s failed", request.url.path)
        status, message, hint = 500, f"the dashboard failed: {type(exc).__name__}", "see the server's log"
    name = "_error.html" if partial else "error.html"
    return render(request, name, {"message": message, "hint": hint}, status)


def page(request: Request, name: str, build: Callable[[], dict[str, Any]]) -> HTMLResponse:
    try:
        context = build()
    except Exception as exc:
        return error_panel(request, exc)
    return render(request, name, context)


def check_csrf(request: Request, token: str) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, token):
        raise ConfigError(
            "the form's CSRF token does not match this browser's",
            hint="reload the page and submit the form again",
        )
