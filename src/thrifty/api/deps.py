"""What every route needs: the registry, the caller (token → role), audit, pages of at most 1 MB."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel

from thrifty import access, runtime
from thrifty.access import Principal
from thrifty.errors import AccessError
from thrifty.registry import Registry
from thrifty.serving.auth import is_loopback
from thrifty.settings import Settings

T = TypeVar("T")

#: no answer is bigger than this by default: a page is cut short and says where to go on
MAX_RESPONSE_BYTES = 1_000_000
DEFAULT_PAGE = 50
MAX_PAGE = 500


def settings_of(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found


def registry_of(request: Request) -> Registry:
    return runtime.registry(settings_of(request))


def _principal(request: Request) -> Principal:
    registry = registry_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return access.authenticate(registry, token)
    if access.any_tokens(registry):
        raise AccessError(
            "missing bearer token: send 'Authorization: Bearer <token>'",
            hint="make one with `thrifty tokens create --role viewer` (deployer to change things)",
        )
    peer = request.client.host if request.client else ""
    if is_loopback(peer):
        return Principal(name="loopback", role="admin")
    raise AccessError(
        f"client {peer} refused: no API tokens exist, so only this machine is served",
        hint="make a token with `thrifty tokens create --role viewer` on the server",
        status=403,
    )


def require(role: str) -> Callable[[Request], Principal]:
    def check(request: Request) -> Principal:
        principal = _principal(request)
        request.state.principal = principal
        principal.require(role)
        return principal

    check.__name__ = f"require_{role}"
    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Deployer = Annotated[Principal, Depends(require("deployer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Reg = Annotated[Registry, Depends(registry_of)]
Conf = Annotated[Settings, Depends(settings_of)]
Offset = Annotated[int, Query(ge=0, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Most items in this page.")]


class Page(BaseModel, Generic[T]):
    """One page of a list: ``next_offset`` is where the next page starts (None on the last)."""

    items: list[T]
    total: int
    offset: int
    limit: int
    next_offset: int | None


def page(items: Sequence[T], offset: int = 0, limit: int = DEFAULT_PAGE, total: int | None = None) -> Page[T]:
    """``items[offset:offset+limit]`` (or a page already cut, with ``total``), cut to ≤ 1 MB."""
    chosen = list(items) if total is not None else list(items[offset : offset + limit])
    total = len(items) if total is None else total
    size, kept = 200, 0
    for item in chosen:
        size += _json_size(item) + 1
        if size > MAX_RESPONSE_BYTES and kept:
            break
        kept += 1
    end = offset + kept
    return Page(
        items=chosen[:kept], total=total, offset=offset, limit=limit, next_offset=end if end < total else None
    )


def _json_size(item: Any) -> int:
    data = item.model_dump(mode="json") if hasattr(item, "model_dump") else item
    return len(json.dumps(data, default=str))


def audit(
    registry: Registry,
    who: Principal,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> None:
    access.audit(registry, who.name, action, target, before=_plain(before), after=_plain(after))


def _plain(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    data = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
    return data if isinstance(data, dict) else {"value": data}
