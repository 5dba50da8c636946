"""Tokens, the audit log, operations and webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from thrifty import access, webhooks
from thrifty.api import ops
from thrifty.api.deps import Admin, Limit, Offset, Page, Reg, Viewer, audit, page
from thrifty.api.ops import OperationView
from thrifty.api.routes.models import cli
from thrifty.client import FINAL_STATES
from thrifty.registry import Registry

router = APIRouter(tags=["admin"])


class TokenView(BaseModel):
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewToken(TokenView):
    token: str = Field(..., description="Shown once: only its sha256 is stored.")


class TokenRequest(BaseModel):
    name: str = Field(..., min_length=1, max_length=100)
    role: str = Field(..., description="viewer, deployer or admin.")


def token_view(row: Any) -> TokenView:
    return TokenView.model_validate(row, from_attributes=True)


@router.post("/tokens", status_code=201, openapi_extra=cli("tokens create"))
def create_token(body: TokenRequest, who: Admin, registry: Reg) -> NewToken:
    row, secret = access.create_token(registry, body.name, body.role)
    audit(registry, who, "tokens.create", body.name, None, token_view(row))
    return NewToken(**token_view(row).model_dump(), token=secret)


@router.get("/tokens", openapi_extra=cli("tokens list"))
def list_tokens(_: Admin, registry: Reg) -> list[TokenView]:
    return [token_view(t) for t in access.list_tokens(registry)]


@router.delete("/tokens/{token_id}", openapi_extra=cli("tokens revoke"))
def revoke_token(token_id: int, who: Admin, registry: Reg) -> TokenView:
    row = token_view(access.revoke_token(registry, token_id))
    audit(registry, who, "tokens.revoke", row.name, {"revoked_at": None}, row)
    return row


class AuditView(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@router.get("/audit")
def audit_log(_: Admin, registry: Reg, offset: Offset = 0, limit: Limit = 50) -> Page[AuditView]:
    """Every write (and refused write) through the API: who, what, when, before → after."""
    rows, total = access.list_audit(registry, offset=offset, limit=limit)
    views = [AuditView.model_validate(r, from_attributes=True) for r in rows]
    return page(views, offset, limit, total=total)


@router.get("/operations")
def list_operations(_: Viewer, registry: Reg, offset: Offset = 0, limit: Limit = 50) -> Page[OperationView]:
    rows, total = ops.listing(registry, offset, limit)
    return page([ops.view(r) for r in rows], offset, limit, total=total)


@router.get("/operations/{op_id}")
async def get_operation(op_id: str, _: Viewer, registry: Reg) -> OperationView:
    """Where an operation stands (read from its Prefect flow run now)."""
    return ops.view(await run_in_threadpool(ops.refresh, registry, op_id))


@router.get("/operations/{op_id}/logs", response_model=None)
async def operation_logs(
    op_id: str, _: Viewer, registry: Reg, offset: Offset = 0, limit: Limit = 200,
    follow: bool = Query(False, description="Stream new lines (text/event-stream) until the run ends."),
) -> StreamingResponse | list[dict[str, Any]]:  # fmt: skip
    """The flow run's log lines, oldest first; ``follow=true`` streams them as server-sent events."""
    ops.get(registry, op_id)  # 404 first
    if follow:
        return StreamingResponse(_follow(registry, op_id, offset), media_type="text/event-stream")
    lines: list[dict[str, Any]] = await run_in_threadpool(ops.logs, registry, op_id, offset, limit)
    return lines


async def _follow(registry: Registry, op_id: str, offset: int, poll_s: float = 1.0) -> AsyncIterator[str]:
    while True:
        row = await run_in_threadpool(ops.refresh, registry, op_id)
        lines = await run_in_threadpool(ops.logs, registry, op_id, offset, 200)
        for line in lines:
            yield f"data: {json.dumps(line)}\n\n"
        offset += len(lines)
        if row.state in FINAL_STATES and not lines:
            yield f"event: end\ndata: {json.dumps({'state': row.state})}\n\n"
            return
        await asyncio.sleep(poll_s)


class WebhookRequest(BaseModel):
    url: str
    event_types: list[str] = Field(..., description=f"Any of {', '.join(webhooks.EVENT_TYPES)}.")
    secret: str | None = Field(None, description="Signing secret (≥ 16 characters); default: one is made.")


class WebhookView(BaseModel):
    id: int
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime


class NewWebhook(WebhookView):
    secret: str = Field(..., description="Shown once: the receiver verifies signatures with it.")


class DeliveryView(BaseModel):
    id: int
    event_id: str
    event_type: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@router.post("/webhooks", status_code=201)
def create_webhook(body: WebhookRequest, who: Admin, registry: Reg) -> NewWebhook:
    row = webhooks.subscribe(registry, body.url, body.event_types, body.secret)
    view = WebhookView.model_validate(row, from_attributes=True)
    audit(registry, who, "webhooks.create", body.url, None, view)
    return NewWebhook(**view.model_dump(), secret=row.secret)


@router.get("/webhooks")
def list_webhooks(_: Admin, registry: Reg) -> list[WebhookView]:
    return [WebhookView.model_validate(r, from_attributes=True) for r in webhooks.subscriptions(registry)]


@router.delete("/webhooks/{subscription_id}")
def delete_webhook(subscription_id: int, who: Admin, registry: Reg) -> WebhookView:
    view = WebhookView.model_validate(webhooks.unsubscribe(registry, subscription_id), from_attributes=True)
    audit(registry, who, "webhooks.delete", view.url, view, None)
    return view


@router.get("/webhooks/{subscription_id}/deliveries")
def webhook_deliveries(
    subscription_id: int, _: Admin, registry: Reg, limit: Limit = 100
) -> list[DeliveryView]:
    """The delivery log, newest first: state, attempts, the receiver's last answer."""
    rows = webhooks.deliveries(registry, subscription_id, limit)
    return [DeliveryView.model_validate(r, from_attributes=True) for r in rows]
