"""Every error the API answers is one JSON body — ``{"error", "message", "fix"}`` — never a traceback.

ThriftyError subclasses map to HTTP statuses here, in one place; the SDK maps them back.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from thrifty import errors as e

log = logging.getLogger("thrifty.api")

#: most specific first: the first class an error is an instance of decides its status
STATUS: tuple[tuple[type[e.ThriftyError], int], ...] = (
    (e.NotFoundError, 404),
    (e.ConflictError, 409),
    (e.NotAvailableError, 501),
    (e.ModelTooLargeError, 413),
    (e.IngestError, 400),
    (e.ConfigError, 400),
    (e.InvalidRequestError, 400),
    (e.SloUnreachableError, 422),
    (e.PlanningError, 422),
    (e.CredentialsError, 502),
    (e.QuotaExceededError, 409),  # the caller asked for more than the account's quota: theirs to fix
    (e.CapacityError, 503),
    (e.ProviderError, 502),
    (e.CatalogError, 502),
)


class ErrorBody(BaseModel):
    """What every refusal looks like: the error class, what went wrong, how to fix it."""

    error: str
    message: str
    fix: str | None = None


def status_of(exc: e.ThriftyError) -> int:
    if isinstance(exc, e.AccessError):
        return exc.status
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


def error_response(status: int, error: str, message: str, fix: str | None) -> JSONResponse:
    headers = {"www-authenticate": 'Bearer realm="thrifty"'} if status == 401 else None
    body = ErrorBody(error=error, message=message, fix=fix).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


async def _thrifty(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.ThriftyError)
    _audit_refusal(request, exc)
    return error_response(status_of(exc), type(exc).__name__, exc.message, exc.hint)


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors()[:10]
    )
    return error_response(
        422, "ValidationError", f"the request is not valid: {problems}", "see /api/v1/docs for the fields"
    )


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    fix = "see /api/v1/docs for the operations" if exc.status_code in (404, 405) else None
    return error_response(exc.status_code, "HTTPError", str(exc.detail), fix)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error in the API", exc_info=exc)
    return error_response(
        500, "InternalError", f"unexpected {type(exc).__name__}", "see the API server's log; please report it"
    )


def _audit_refusal(request: Request, exc: e.ThriftyError) -> None:
    """A refused write is audited too (who tried what), unless it was refused before we knew who."""
    principal: Any = getattr(request.state, "principal", None)
    if request.method in ("GET", "HEAD", "OPTIONS") or principal is None:
        return
    from thrifty import access, runtime

    settings = request.app.state.settings
    action = f"{request.method} {request.url.path}"
    after = {"error": type(exc).__name__, "message": exc.message[:500]}
    access.audit(runtime.registry(settings), principal.name, action, "", after=after, outcome="refused")


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.ThriftyError, _thrifty)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
