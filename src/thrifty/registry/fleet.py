"""The registry's SQL for fleet metrics, the spend ledger and anomaly alerts (issue 16).

Kept beside ``repository.py`` (still inside ``thrifty.registry``, the only package that issues SQL)
as functions of a ``Registry``. Every write replaces a whole range of buckets and moves its cursor in
one transaction, so a rollup step that crashes or runs twice leaves the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select

from thrifty.registry.models import (
    AnomalyAlert,
    Deployment,
    MetricRollup,
    Plan,
    RequestLog,
    RollupCursor,
    SpendEntry,
    Variant,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from thrifty.registry.repository import Registry

#: (at, latency_ms, cold, status_code, request_bytes, response_bytes): what a rollup needs of one
#: logged request (sizes 0 where the log has none: rows from before migration 0003_egress)
RequestRow = tuple[datetime, float, bool, int, int, int]


def request_rows(registry: Registry, name: str, start: datetime, end: datetime) -> list[RequestRow]:
    """The request log of ``name`` in ``[start, end)``, oldest first, as plain tuples."""
    query = (
        select(
            RequestLog.at,
            RequestLog.latency_ms,
            RequestLog.cold,
            RequestLog.status_code,
            RequestLog.request_bytes,
            RequestLog.response_bytes,
        )
        .where(RequestLog.model_name == name, RequestLog.at >= start, RequestLog.at < end)
        .order_by(RequestLog.at)
    )
    with registry.session() as s:
        return [
            (at, float(ms), bool(cold), int(code), int(sent or 0), int(got or 0))
            for at, ms, cold, code, sent, got in s.execute(query)
        ]


def bytes_out(registry: Registry, names: Sequence[str], start: datetime, end: datetime) -> int:
    """Σ response bytes the request log holds for ``names`` in ``[start, end)`` (one indexed query)."""
    if not names or end <= start:
        return 0
    query = select(func.sum(RequestLog.response_bytes)).where(
        RequestLog.model_name.in_(list(names)), RequestLog.at >= start, RequestLog.at < end
    )
    with registry.session() as s:
        return int(s.scalar(query) or 0)


def response_sizes(
    registry: Registry, names: Sequence[str], start: datetime, end: datetime
) -> list[tuple[str, int]]:
    """(deployment, response bytes) of every request of ``names`` in ``[start, end)``, in the order sent."""
    query = (
        select(RequestLog.model_name, RequestLog.response_bytes)
        .where(RequestLog.model_name.in_(list(names)), RequestLog.at >= start, RequestLog.at < end)
        .order_by(RequestLog.at, RequestLog.id)
    )
    with registry.session() as s:
        return [(str(name), int(size or 0)) for name, size in s.execute(query)]


def deployments_on_cloud(registry: Registry, cloud: str) -> list[str]:
    """Names of the deployments whose plan chose ``cloud`` (or, without a plan, that run there): one
    bill, so one free egress allowance, between them."""
    query = (
        select(Deployment.name)
        .outerjoin(Plan, Plan.id == Deployment.plan_id)
        .where((Plan.chosen_provider == cloud) | (Plan.id.is_(None) & (Deployment.provider == cloud)))
        .order_by(Deployment.name)
    )
    with registry.session() as s:
        return [str(name) for name in s.scalars(query)]


def first_request_at(registry: Registry, name: str) -> datetime | None:
    with registry.session() as s:
        found: datetime | None = s.scalar(
            select(func.min(RequestLog.at)).where(RequestLog.model_name == name)
        )
        return found


def cursor(registry: Registry, name: str, resolution_s: int) -> datetime | None:
    """Where the next rollup of ``name`` at ``resolution_s`` starts (None: never rolled up)."""
    with registry.session() as s:
        found = s.scalar(
            select(RollupCursor).where(
                RollupCursor.deployment == name, RollupCursor.resolution_s == resolution_s
            )
        )
        return None if found is None else found.done_until


def _move_cursor(s: Session, name: str, resolution_s: int, done_until: datetime) -> None:
    found = s.scalar(
        select(RollupCursor).where(RollupCursor.deployment == name, RollupCursor.resolution_s == resolution_s)
    )
    if found is None:
        s.add(RollupCursor(deployment=name, resolution_s=resolution_s, done_until=done_until))
    else:
        found.done_until = done_until


def replace_buckets(
    registry: Registry,
    name: str,
    resolution_s: int,
    span: tuple[datetime, datetime],
    rollups: Sequence[dict[str, Any]],
    spend: Sequence[dict[str, Any]] = (),
) -> None:
    """Replace ``name``'s buckets (and ledger hours) in ``[start, end)`` and set the cursor to ``end``."""
    start, end = span
    with registry.session() as s:
        s.execute(
            delete(MetricRollup).where(
                MetricRollup.deployment == name,
                MetricRollup.resolution_s == resolution_s,
                MetricRollup.bucket_start >= start,
                MetricRollup.bucket_start < end,
            )
        )
        if rollups:
            s.execute(
                insert(MetricRollup), [dict(r, deployment=name, resolution_s=resolution_s) for r in rollups]
            )
        if resolution_s == 3600:
            s.execute(
                delete(SpendEntry).where(
                    SpendEntry.deployment == name, SpendEntry.hour_start >= start, SpendEntry.hour_start < end
                )
            )
            if spend:
                s.execute(insert(SpendEntry), [dict(r, deployment=name) for r in spend])
        _move_cursor(s, name, resolution_s, end)


def rollups(
    registry: Registry, name: str, resolution_s: int, start: datetime, end: datetime
) -> list[MetricRollup]:
    query = (
        select(MetricRollup)
        .where(
            MetricRollup.deployment == name,
            MetricRollup.resolution_s == resolution_s,
            MetricRollup.bucket_start >= start,
            MetricRollup.bucket_start < end,
        )
        .order_by(MetricRollup.bucket_start)
    )
    with registry.session() as s:
        return list(s.scalars(query))


def prune(registry: Registry, resolution_s: int, before: datetime) -> int:
    """Drop buckets (and, for hours, ledger rows) older than ``before``; returns the rows dropped."""
    with registry.session() as s:
        result = s.execute(
            delete(MetricRollup).where(
                MetricRollup.resolution_s == resolution_s, MetricRollup.bucket_start < before
            )
        )
        dropped = int(result.rowcount)  # type: ignore[attr-defined]
        if resolution_s == 3600:
            result = s.execute(delete(SpendEntry).where(SpendEntry.hour_start < before))
            dropped += int(result.rowcount)  # type: ignore[attr-defined]
        return dropped


def spend(registry: Registry, name: str, start: datetime, end: datetime) -> list[SpendEntry]:
    query = (
        select(SpendEntry)
        .where(SpendEntry.deployment == name, SpendEntry.hour_start >= start, SpendEntry.hour_start < end)
        .order_by(SpendEntry.hour_start, SpendEntry.kind)
    )
    with registry.session() as s:
        return list(s.scalars(query))


# -- alerts ---------------------------------------------------------------------------------------
def add_alerts(registry: Registry, rows: Sequence[dict[str, Any]]) -> list[AnomalyAlert]:
    """Store the alerts not stored yet (same deployment, kind and minute); returns the new ones."""
    added = []
    with registry.session() as s:
        for row in rows:
            exists = s.scalar(
                select(AnomalyAlert.id).where(
                    AnomalyAlert.deployment == row["deployment"],
                    AnomalyAlert.kind == row["kind"],
                    AnomalyAlert.at == row["at"],
                )
            )
            if exists is None:
                alert = AnomalyAlert(**row)
                s.add(alert)
                added.append(alert)
        s.flush()
    return added


def last_alert_at(registry: Registry, name: str, kind: str) -> datetime | None:
    with registry.session() as s:
        found: datetime | None = s.scalar(
            select(func.max(AnomalyAlert.at)).where(
                AnomalyAlert.deployment == name, AnomalyAlert.kind == kind
            )
        )
        return found


def set_alert_event(registry: Registry, alert_id: int, event_id: str) -> None:
    with registry.session() as s:
        alert = s.get(AnomalyAlert, alert_id)
        if alert is not None:
            alert.event_id = event_id


def alerts(
    registry: Registry, name: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[AnomalyAlert]:
    """Newest first."""
    query = select(AnomalyAlert)
    if name is not None:
        query = query.where(AnomalyAlert.deployment == name)
    if since is not None:
        query = query.where(AnomalyAlert.at >= since)
    with registry.session() as s:
        return list(s.scalars(query.order_by(AnomalyAlert.at.desc(), AnomalyAlert.id.desc()).limit(limit)))


# -- the dashboard's cost analytics: the ledger summed in SQL -------------------------------------
def spend_by_deployment(
    registry: Registry, names: Sequence[str], start: datetime, end: datetime
) -> dict[str, float]:
    """Ledger dollars (every kind) of each of ``names`` with ``start <= hour_start < end``."""
    query = (
        select(SpendEntry.deployment, func.sum(SpendEntry.usd))
        .where(
            SpendEntry.deployment.in_(list(names)),
            SpendEntry.hour_start >= start,
            SpendEntry.hour_start < end,
        )
        .group_by(SpendEntry.deployment)
    )
    with registry.session() as s:
        return {name: float(usd or 0.0) for name, usd in s.execute(query)}


def spend_by_cloud(registry: Registry, start: datetime, end: datetime) -> dict[str, float]:
    """Ledger dollars in ``[start, end)`` summed by the cloud the deployment's plan chose."""
    query = (
        select(Plan.chosen_provider, func.sum(SpendEntry.usd))
        .join(Deployment, Deployment.name == SpendEntry.deployment)
        .join(Plan, Plan.id == Deployment.plan_id)
        .where(SpendEntry.hour_start >= start, SpendEntry.hour_start < end)
        .group_by(Plan.chosen_provider)
    )
    with registry.session() as s:
        return {cloud or "": float(usd or 0.0) for cloud, usd in s.execute(query)}


def ledger_until(registry: Registry) -> datetime | None:
    """Up to when (exclusive) the newest hourly rollup reaches: the ledger's last complete hour."""
    with registry.session() as s:
        found: datetime | None = s.scalar(
            select(func.max(RollupCursor.done_until)).where(RollupCursor.resolution_s == 3600)
        )
        return found


def states_serving_version(registry: Registry, version_id: int) -> list[str]:
    """The state of every deployment whose variant belongs to model version ``version_id`` (one query)."""
    query = (
        select(Deployment.state)
        .join(Variant, Variant.id == Deployment.variant_id)
        .where(Variant.model_version_id == version_id)
    )
    with registry.session() as s:
        return [str(state) for state in s.scalars(query)]
