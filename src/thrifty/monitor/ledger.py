"""The spend ledger: what each deployment cost this month, what it will cost, and per million requests.

    month_spend(registry, row, now)   month to date: compute (replica-seconds × the price in force),
                                      storage (its blobs by tier), requests and busy time; from the
                                      ledger's complete hours plus the hours the monitor has not rolled
                                      up yet, computed the same way on the spot
    forecast                          month to date + the last 24 h's run rate × the hours left

$/1M requests on two bases: **reservation** — everything the replicas cost ÷ requests served (what
the bill says per request) — and **usage** — only the busy share of that (Σ latency ÷
replica-seconds), what the requests would cost if nothing idled. Transfer is not in the ledger: the
request log records no response sizes, so there is nothing honest to bill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from thrifty.monitor.rollup import HOUR_S, DeploymentUsage, bucket_stats, floor_time, usage_of
from thrifty.monitor.usage import bucket_cost, serverless_usd
from thrifty.registry import fleet

TRANSFER_NOTE = "transfer is not billed: the request log records no response sizes"


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_end(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass
class Spend:
    """Money and use over a span."""

    compute_usd: float = 0.0
    storage_usd: float = 0.0
    storage_usd_saved: float = 0.0
    requests: int = 0
    errors: int = 0
    replica_s: float = 0.0
    busy_s: float = 0.0
    sources: set[str] = field(default_factory=set)

    def add(self, other: Spend) -> None:
        for name in (
            "compute_usd",
            "storage_usd",
            "storage_usd_saved",
            "requests",
            "errors",
            "replica_s",
            "busy_s",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.sources |= other.sources

    @property
    def total_usd(self) -> float:
        return self.compute_usd + self.storage_usd

    def per_million(self) -> tuple[float | None, float | None]:
        """$/1M requests: (reservation basis, usage basis); None without requests."""
        if not self.requests:
            return None, None
        reservation = self.compute_usd / self.requests * 1e6
        busy_share = min(1.0, self.busy_s / self.replica_s) if self.replica_s else 1.0
        return reservation, reservation * busy_share


def from_ledger(registry: Any, name: str, start: datetime, end: datetime) -> Spend:
    """The stored ledger and hourly rollups of ``[start, end)`` (whole hours)."""
    spend = Spend()
    for entry in fleet.spend(registry, name, start, end):
        if entry.kind == "compute":
            spend.compute_usd += entry.usd
        else:
            spend.storage_usd += entry.usd
            spend.storage_usd_saved += entry.usd_saved
        spend.sources.add(entry.source)
    for hour in fleet.rollups(registry, name, HOUR_S, start, end):
        spend.requests += hour.requests
        spend.errors += hour.errors
        spend.replica_s += hour.replica_s
        spend.busy_s += hour.busy_s
    return spend


def on_the_spot(registry: Any, usage: DeploymentUsage, start: datetime, end: datetime) -> Spend:
    """``[start, end)`` computed from the request log, the replica history and the prices, as the rollup does."""
    if end <= start:
        return Spend()
    stats = bucket_stats(fleet.request_rows(registry, usage.name, start, end))
    replica_s, usd = bucket_cost(usage.replicas, usage.book, start, end)
    usd += serverless_usd(usage.offer, stats["requests"], stats["busy_s"])
    stored_from = max(start, usage.created_at)
    hours = max(0.0, (end - stored_from).total_seconds() / 3600)
    source = f"{usage.offer.label()}: {usage.book.source}" if usage.offer and usage.book else "unpriced"
    return Spend(
        compute_usd=usd,
        storage_usd=usage.storage.usd_per_hour * hours,
        storage_usd_saved=usage.storage.usd_saved_per_hour * hours,
        requests=int(stats["requests"]),
        errors=int(stats["errors"]),
        replica_s=replica_s,
        busy_s=float(stats["busy_s"]),
        sources={source},
    )


def spend_between(registry: Any, usage: DeploymentUsage, start: datetime, end: datetime) -> Spend:
    """Ledger hours where the monitor has rolled them up, the rest on the spot."""
    done = fleet.cursor(registry, usage.name, HOUR_S)
    split = min(max(done or start, start), end)
    split = floor_time(split, HOUR_S) if split > start else start
    spend = from_ledger(registry, usage.name, start, split) if split > start else Spend()
    spend.add(on_the_spot(registry, usage, split, end))
    return spend


def run_rate_usd_per_hour(registry: Any, usage: DeploymentUsage, now: datetime) -> float:
    """Spend per hour over the last 24 h (or since the deployment began, if later)."""
    start = max(now - timedelta(hours=24), usage.created_at)
    hours = (now - start).total_seconds() / 3600
    if hours <= 0:
        return usage.storage.usd_per_hour
    return on_the_spot(registry, usage, start, now).total_usd / hours


def price_now(usage: DeploymentUsage, now: datetime) -> float | None:
    """What the replicas running now cost per hour (None when unpriced or serverless)."""
    if usage.book is None or usage.offer is None or usage.offer.serverless:
        return None
    from thrifty.monitor.usage import value_at

    replicas = value_at(usage.replicas, now, 0.0)
    hourly = usage.book.usd_per_hour_at(now) if usage.book.steps else (usage.offer.plan_usd_per_hour or 0.0)
    return replicas * hourly


def month_to_date(registry: Any, row: Any, now: datetime) -> tuple[DeploymentUsage, Spend]:
    usage = usage_of(registry, row)
    return usage, spend_between(registry, usage, month_start(now), now)
