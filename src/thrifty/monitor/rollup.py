"""Fleet metrics: the request log rolled up per deployment into one-minute and one-hour buckets.

    roll_up(registry, now)   every deployment, both resolutions: incremental from each cursor,
                             idempotent (a range is replaced whole, cursor moved in the same
                             transaction), and old buckets pruned (minutes after 7 days, hours and
                             the ledger after 400 days)

A minute holds requests, errors (status ≥ 500), cold starts, latency p50/p95/p99 (nearest rank
over its requests), busy seconds (Σ latency), bytes in and out (Σ of the request and response
sizes the gateway logged), replica-seconds and the dollars of those replica-seconds at the price in
force. An hour is made from its minutes: counts, seconds and dollars
add up exactly; its percentiles are the request-weighted median of the minutes' percentiles (an
approximation: reading an hour of raw requests again would cost the machine more than it tells).
An hourly bucket also writes the spend ledger's compute, storage and transfer rows (internet
egress of the hour's responses, ``egress.py``; the plan's one-time artifact copy in the hour the
deployment was created).

Only complete buckets are written, and a minute only once it is ``SETTLE`` old: the gateway writes
its request log in batches every second. Each run reads only the request log after its cursor, so
its cost follows the traffic since the last run. Serving never waits for any of this: the gateway
only appends to the request log, and the monitor flow reads it in another process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from thrifty.monitor.egress import ArtifactCopy, CloudBytes, artifact_copy_of, internet_egress
from thrifty.monitor.usage import (
    Offer,
    PriceBook,
    Step,
    StorageUse,
    bucket_cost,
    offer_of,
    price_book,
    replica_steps,
    serverless_usd,
    storage_use,
)
from thrifty.registry import fleet
from thrifty.states import state_of

MINUTE_S, HOUR_S = 60, 3600
RESOLUTIONS = (MINUTE_S, HOUR_S)
RETENTION = {MINUTE_S: timedelta(days=7), HOUR_S: timedelta(days=400)}
#: a minute is rolled up once it is this old (the gateway flushes its request log every second)
SETTLE = timedelta(seconds=15)


def floor_time(at: datetime, resolution_s: int) -> datetime:
    seconds = at.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(seconds - seconds % resolution_s, UTC)


@dataclass(frozen=True)
class DeploymentUsage:
    """What the rollup and the ledger need to know of one deployment, read once per run."""

    name: str
    created_at: datetime
    replicas: list[Step]
    offer: Offer | None
    book: PriceBook | None
    storage: StorageUse
    artifact_copy: ArtifactCopy | None = None


def usage_of(registry: Any, row: Any) -> DeploymentUsage:
    plan = registry.get_plan(row.plan_id) if row.plan_id is not None else None
    offer = offer_of(row, plan)
    return DeploymentUsage(
        name=row.name,
        created_at=row.created_at,
        replicas=replica_steps(registry.list_events(row.name), row),
        offer=offer,
        book=price_book(registry, offer) if offer is not None else None,
        storage=storage_use(registry, row, offer)
        if state_of(row.state).exists
        else StorageUse({}, 0.0, 0.0, ""),
        artifact_copy=artifact_copy_of(plan),
    )


def _nearest_rank(ordered: np.ndarray[Any, Any], q: float) -> float:
    return float(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)])


def bucket_stats(rows: Sequence[fleet.RequestRow]) -> dict[str, Any]:
    """Requests, errors, cold starts, latency percentiles and busy seconds of one bucket's requests."""
    latency = np.sort(np.array([r[1] for r in rows], dtype=np.float64))
    empty = len(latency) == 0
    return {
        "requests": len(rows),
        "errors": sum(1 for r in rows if r[3] >= 500),
        "cold_starts": sum(1 for r in rows if r[2]),
        "latency_ms_p50": None if empty else _nearest_rank(latency, 50),
        "latency_ms_p95": None if empty else _nearest_rank(latency, 95),
        "latency_ms_p99": None if empty else _nearest_rank(latency, 99),
        "busy_s": float(latency.sum()) / 1000.0,
        "bytes_in": sum(r[4] for r in rows),
        "bytes_out": sum(r[5] for r in rows),
    }


def buckets(
    usage: DeploymentUsage,
    rows: Sequence[fleet.RequestRow],
    span: tuple[datetime, datetime],
    resolution_s: int,
) -> list[dict[str, Any]]:
    """One row per bucket of ``span`` (empty buckets too, while replicas ran or requests came)."""
    start, end = span
    step = timedelta(seconds=resolution_s)
    edges = [r[0] for r in rows]
    out = []
    at, lo = start, 0
    while at < end:
        hi = _first_at_or_after(edges, at + step, lo)
        stats = bucket_stats(rows[lo:hi])
        replica_s, usd = bucket_cost(usage.replicas, usage.book, at, at + step)
        usd += serverless_usd(usage.offer, stats["requests"], stats["busy_s"])
        if stats["requests"] or replica_s:
            out.append(stats | {"bucket_start": at, "replica_s": replica_s, "usd": usd})
        at, lo = at + step, hi
    return out


SUMMED = ("requests", "errors", "cold_starts", "busy_s", "replica_s", "usd", "bytes_in", "bytes_out")
PERCENTILES = ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99")


def _weighted_median(values: list[float], weights: list[float]) -> float | None:
    pairs = sorted((v, w) for v, w in zip(values, weights, strict=True) if w > 0)
    if not pairs:
        return None
    half, seen = sum(w for _, w in pairs) / 2, 0.0
    for value, weight in pairs:
        seen += weight
        if seen >= half:
            return value
    return pairs[-1][0]


def _hour(minutes: Sequence[Any], at: datetime) -> dict[str, Any]:
    # `or 0`: minutes rolled up before migration 0003_egress have no bytes
    row: dict[str, Any] = {key: sum(getattr(m, key) or 0 for m in minutes) for key in SUMMED}
    for key in PERCENTILES:
        timed = [m for m in minutes if getattr(m, key) is not None]
        row[key] = _weighted_median([getattr(m, key) for m in timed], [float(m.requests) for m in timed])
    return row | {"bucket_start": at}


def hours_from_minutes(minutes: Sequence[Any], span: tuple[datetime, datetime]) -> list[dict[str, Any]]:
    """One row per hour of ``span`` that has minutes, made from them."""
    by_hour: dict[datetime, list[Any]] = {}
    for minute in minutes:
        by_hour.setdefault(floor_time(minute.bucket_start, HOUR_S), []).append(minute)
    return [_hour(by_hour[at], at) for at in sorted(by_hour) if span[0] <= at < span[1]]


def _first_at_or_after(edges: Sequence[datetime], at: datetime, lo: int) -> int:
    import bisect

    return bisect.bisect_left(edges, at, lo)


def spend_rows(
    usage: DeploymentUsage, hours: Sequence[dict[str, Any]], span: tuple[datetime, datetime]
) -> list[dict[str, Any]]:
    """The ledger's rows for complete hours: compute (from the hourly buckets) and storage."""
    source = usage.book.source if usage.book else "no offer: deployed without a plan or a cloud place"
    label = usage.offer.label() if usage.offer else "unpriced"
    rows = [
        {
            "hour_start": h["bucket_start"],
            "kind": "compute",
            "quantity": h["replica_s"],
            "unit": "replica_s",
            "usd": h["usd"],
            "usd_saved": 0.0,
            "source": f"{label}: {source}",
        }
        for h in hours
    ]
    storage = usage.storage
    if storage.bytes_by_tier:
        at, end = span
        while at < end:
            if at >= floor_time(usage.created_at, HOUR_S):
                rows.append(_storage_row(storage, at))
            at += timedelta(hours=1)
    return rows


def _storage_row(storage: StorageUse, at: datetime) -> dict[str, Any]:
    tiers = ", ".join(f"{tier} {size / 1e6:.1f} MB" for tier, size in sorted(storage.bytes_by_tier.items()))
    return {
        "hour_start": at,
        "kind": "storage",
        "quantity": float(sum(storage.bytes_by_tier.values())),
        "unit": "bytes",
        "usd": storage.usd_per_hour,
        "usd_saved": storage.usd_saved_per_hour,
        "source": f"{storage.cloud} storage classes: {tiers}",
    }


def transfer_rows(
    book: CloudBytes, usage: DeploymentUsage, hours: Sequence[dict[str, Any]], span: tuple[datetime, datetime]
) -> list[dict[str, Any]]:
    """The ledger's transfer rows: each hour's internet egress, and the artifact copy once."""
    rows = []
    for hour in hours:
        if not hour.get("bytes_out"):
            continue
        at = hour["bucket_start"]
        sent = internet_egress(book, usage, at, at + timedelta(hours=1))
        where = usage.offer.provider if usage.offer else "no cloud offer: not priced"
        rows.append(_transfer_row(at, "transfer", sent.bytes_out, sent.usd, sent.usd_saved, where))
    copy, created = usage.artifact_copy, floor_time(usage.created_at, HOUR_S)
    if copy is not None and span[0] <= created < span[1]:
        rows.append(_transfer_row(created, "artifact_copy", copy.size_bytes, copy.usd, 0.0, copy.source))
    return rows


def _transfer_row(
    at: datetime, kind: str, size: int, usd: float, saved: float, source: str
) -> dict[str, Any]:
    return {
        "hour_start": at,
        "kind": kind,
        "quantity": float(size),
        "unit": "bytes",
        "usd": usd,
        "usd_saved": saved,
        "source": source if kind == "artifact_copy" else f"internet egress ({source})",
    }


def _span(
    registry: Any, usage: DeploymentUsage, resolution_s: int, now: datetime
) -> tuple[datetime, datetime] | None:
    end = floor_time(now - SETTLE, resolution_s)
    oldest = floor_time(now - RETENTION[resolution_s], resolution_s)
    done = fleet.cursor(registry, usage.name, resolution_s)
    if done is not None:
        start = done
    else:
        first = fleet.first_request_at(registry, usage.name)
        start = min(usage.created_at, first) if first is not None else usage.created_at
    start = max(floor_time(start, resolution_s), oldest)
    return (start, end) if start < end else None


def roll_up_deployment(
    registry: Any, usage: DeploymentUsage, resolution_s: int, now: datetime, book: CloudBytes | None = None
) -> int:
    """Roll up one deployment at one resolution up to ``now``; returns the buckets written."""
    span = _span(registry, usage, resolution_s, now)
    if span is None:
        return 0
    if resolution_s == MINUTE_S:
        written = buckets(usage, fleet.request_rows(registry, usage.name, *span), span, MINUTE_S)
        spend: list[dict[str, Any]] = []
    else:
        minutes = fleet.rollups(registry, usage.name, MINUTE_S, *span)
        written = hours_from_minutes(minutes, span)
        spend = spend_rows(usage, written, span) + transfer_rows(
            book or CloudBytes(registry), usage, written, span
        )
    fleet.replace_buckets(registry, usage.name, resolution_s, span, written, spend)
    return len(written)


@dataclass(frozen=True)
class RollupReport:
    """Buckets written per deployment (``{"minutes": n, "hours": n}``) and rows pruned."""

    written: dict[str, dict[str, int]]
    pruned_rows: int


def roll_up(registry: Any, now: datetime | None = None) -> RollupReport:
    """Every deployment's minutes and hours up to ``now``, then prune what is past retention."""
    now = now or datetime.now(UTC)
    written: dict[str, dict[str, int]] = {}
    book = CloudBytes(registry)  # the cloud-wide egress sums, read once per run
    for row in registry.list_deployments():
        usage = usage_of(registry, row)
        written[row.name] = {
            "minutes": roll_up_deployment(registry, usage, MINUTE_S, now),
            "hours": roll_up_deployment(registry, usage, HOUR_S, now, book),
        }
    pruned = sum(fleet.prune(registry, r, now - RETENTION[r]) for r in RESOLUTIONS)
    return RollupReport(written, pruned)
