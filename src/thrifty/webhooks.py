"""Signed webhooks: subscriptions to thrifty's events, deliveries retried with backoff, a log.

    from thrifty import webhooks
    webhooks.publish("deployment.live", {"deployment": "minilm", "endpoint_url": ...})

Every deployment event the registry records is published too (``Registry.add_event`` calls
``publish_registry_event``), so flows and the gateway need no extra call.

A delivery is ``POST url`` with a JSON body ``{"id", "type", "created_at", "data"}`` and the header
``Thrifty-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``. A receiver checks
it with ``verify`` (shipped here): a wrong signature, a timestamp outside the tolerance, or a
signature seen before (a replay) is refused. Deliveries are retried on a connection error, 408, 429
and 5xx after ``RETRY_DELAYS_S``; each attempt's outcome is kept in ``webhook_deliveries``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select

from thrifty.errors import ConfigError, NotFoundError, ThriftyError
from thrifty.registry.access import WebhookDelivery, WebhookSubscription

if TYPE_CHECKING:
    from thrifty.registry import Registry

log = logging.getLogger("thrifty.webhooks")

EVENT_TYPES = (
    "deployment.live",
    "deployment.failed",
    "deployment.hibernated",
    "deployment.woken",
    "plan.cheaper",
    "anomaly",
    "interruption",
)
#: registry event kinds (``deployment_events.kind``) → the webhook event they publish
REGISTRY_KINDS = {
    "live": "deployment.live",
    "failed": "deployment.failed",
    "deploy-failed": "deployment.failed",
    "hibernate": "deployment.hibernated",
    "hibernated": "deployment.hibernated",
    "wake": "deployment.woken",
    "woken": "deployment.woken",
    "cheaper-plan": "plan.cheaper",
    "anomaly": "anomaly",
    "interruption": "interruption",
    "spot-interruption": "interruption",
}
SIGNATURE_HEADER = "Thrifty-Signature"
RETRY_DELAYS_S: tuple[float, ...] = (1.0, 4.0, 15.0)
TIMEOUT_S = 10.0
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class SignatureError(ThriftyError):
    """A webhook a receiver must refuse: bad signature, stale timestamp or a replay."""


# -- signing and the receiver's check ------------------------------------------------------------
def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class ReplayGuard:
    """Signatures seen within the tolerance window; a second delivery of one is a replay."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def check_and_remember(self, signature: str, timestamp: int, oldest: int) -> bool:
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if t >= oldest}
            if signature in self._seen:
                return False
            self._seen[signature] = timestamp
            return True


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    guard: ReplayGuard | None = None,
    tolerance_s: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """The event, if ``header`` signs ``body`` with ``secret``, is fresh and (with a guard) new."""
    parts = dict(p.split("=", 1) for p in (header or "").split(",") if "=" in p)
    if not parts.get("t", "").isdigit() or "v1" not in parts:
        raise SignatureError(f"no valid {SIGNATURE_HEADER} header", hint="sign with thrifty.webhooks.sign")
    timestamp = int(parts["t"])
    now_s = int(time.time() if now is None else now)
    if abs(now_s - timestamp) > tolerance_s:
        raise SignatureError(
            f"webhook timestamp {timestamp} is {now_s - timestamp} s away from now (tolerance {tolerance_s} s)",
            hint="a replayed or delayed delivery; check the sender's clock",
        )
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        raise SignatureError("webhook signature does not match", hint="is the subscription's secret right?")
    if guard is not None and not guard.check_and_remember(parts["v1"], timestamp, now_s - tolerance_s):
        raise SignatureError("webhook signature seen before: a replay", hint="each delivery is accepted once")
    event: dict[str, Any] = json.loads(body)
    return event


# -- subscriptions -------------------------------------------------------------------------------
def check_event_types(types: Sequence[str]) -> list[str]:
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown or not types:
        raise ConfigError(
            f"unknown webhook event type(s): {', '.join(unknown) or 'none given'}",
            hint=f"choose from {', '.join(EVENT_TYPES)}",
        )
    return list(dict.fromkeys(types))


def subscribe(
    registry: Registry, url: str, event_types: Sequence[str], secret: str | None = None
) -> WebhookSubscription:
    if not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise ConfigError(
            f"webhook URL {url[:100]!r} is not http(s)", hint="e.g. https://hooks.example.com/thrifty"
        )
    if secret is not None and len(secret) < 16:
        raise ConfigError(
            "a webhook secret needs at least 16 characters", hint="leave it out to get one made"
        )
    row = WebhookSubscription(
        url=url,
        secret=secret or "whsec_" + secrets.token_urlsafe(24),
        event_types=check_event_types(event_types),
    )
    with registry.session() as s:
        s.add(row)
        s.flush()
    return row


def subscriptions(registry: Registry) -> list[WebhookSubscription]:
    with registry.session() as s:
        return list(s.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def unsubscribe(registry: Registry, subscription_id: int) -> WebhookSubscription:
    with registry.session() as s:
        row = s.get(WebhookSubscription, subscription_id)
        if row is None:
            raise NotFoundError(f"no webhook subscription {subscription_id}", hint="see GET /api/v1/webhooks")
        s.delete(row)
        return row


def deliveries(registry: Registry, subscription_id: int, limit: int = 100) -> list[WebhookDelivery]:
    with registry.session() as s:
        if s.get(WebhookSubscription, subscription_id) is None:
            raise NotFoundError(f"no webhook subscription {subscription_id}", hint="see GET /api/v1/webhooks")
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == subscription_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        return list(s.scalars(query))


# -- publishing and delivery ---------------------------------------------------------------------
def publish(
    event_type: str, payload: dict[str, Any], *, registry: Registry | None = None, wait: bool = False
) -> list[int]:
    """Queue ``event_type`` for every subscription that wants it; deliver in the background
    (``wait=True``: before returning). Returns the delivery ids."""
    from thrifty import runtime

    check_event_types([event_type])
    registry = registry or runtime.registry()
    event_id = uuid.uuid4().hex
    with registry.session() as s:
        subs = [sub for sub in s.scalars(select(WebhookSubscription).where(WebhookSubscription.active))
                if event_type in (sub.event_types or [])]  # fmt: skip
        rows = [WebhookDelivery(subscription_id=sub.id, event_id=event_id, event_type=event_type, payload=payload)
                for sub in subs]  # fmt: skip
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
    if not ids:
        return []
    if wait:
        _deliver_all(registry, ids)
    else:
        threading.Thread(
            target=_deliver_all, args=(registry, ids), name="thrifty-webhooks", daemon=True
        ).start()
    return ids


def publish_registry_event(
    registry: Registry, deployment: str, kind: str, reason: str, details: dict[str, Any]
) -> None:
    """What ``Registry.add_event`` calls: events with a webhook type are published, never raising."""
    event_type = REGISTRY_KINDS.get(kind)
    if event_type is None:
        return
    payload = {"deployment": deployment, "kind": kind, "reason": reason, "details": details}
    try:
        publish(event_type, payload, registry=registry)
    except Exception:  # a webhook problem must never fail the deploy that recorded the event
        log.exception("could not queue webhook %s for %s", event_type, deployment)


def _deliver_all(registry: Registry, ids: list[int]) -> None:
    with httpx.Client(timeout=TIMEOUT_S, trust_env=False) as http:
        for delivery_id in ids:
            deliver(registry, delivery_id, http)


def _body(row: WebhookDelivery) -> bytes:
    event = {
        "id": row.event_id,
        "type": row.event_type,
        "created_at": row.created_at.isoformat(),
        "data": row.payload,
    }
    return json.dumps(event, sort_keys=True, default=str).encode()


def deliver(registry: Registry, delivery_id: int, http: httpx.Client) -> WebhookDelivery:
    """Send one delivery, retried with backoff; the log row says how it went."""
    with registry.session() as s:
        row = s.get(WebhookDelivery, delivery_id)
        sub = s.get(WebhookSubscription, row.subscription_id) if row else None
    if row is None or sub is None:
        raise NotFoundError(f"no webhook delivery {delivery_id}")
    body = _body(row)
    for attempt, delay_s in enumerate((*RETRY_DELAYS_S, None), start=1):
        status, error = _attempt(http, sub, row, body)
        done = status is not None and 200 <= status < 300
        final = done or delay_s is None or (status is not None and status not in RETRY_STATUS)
        state = "delivered" if done else ("failed" if final else "retrying")
        row = _record(registry, delivery_id, attempt, status, error, state)
        if final:
            return row
        time.sleep(delay_s or 0.0)
    raise AssertionError("unreachable")  # the loop returns on its last pass


def _attempt(
    http: httpx.Client, sub: WebhookSubscription, row: WebhookDelivery, body: bytes
) -> tuple[int | None, str | None]:
    headers = {
        "content-type": "application/json",
        "thrifty-event": row.event_type,
        "thrifty-delivery": str(row.id),
        SIGNATURE_HEADER: sign(sub.secret, body, int(time.time())),
    }
    try:
        response = http.post(sub.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, None if response.is_success else response.text[:500]


def _record(
    registry: Registry, delivery_id: int, attempts: int, status: int | None, error: str | None, state: str
) -> WebhookDelivery:
    with registry.session() as s:
        row = s.get(WebhookDelivery, delivery_id)
        assert row is not None
        row.attempts, row.last_status_code, row.last_error, row.state = attempts, status, error, state
        if state == "delivered":
            row.delivered_at = datetime.now(UTC)
        return row
