"""The spend ledger: what each deployment cost this month, what it will cost, and per million requests.

    month_spend(registry, row, now)   month to date: compute (replica-seconds × the price in force),
                                      storage (its blobs by tier), transfer (internet egress of its
                                      responses past the cloud's free allowance, and the plan's
                                      one-time artifact copy: ``egress.py``), requests and busy time;
                                      from the ledger's complete hours plus the hours the monitor has
                                      not rolled up yet, computed the same way on the spot
    outlook                           the run rate of the last 24 h, and the forecast: month to date +
                                      compute and storage at that rate × the hours left + the egress
                                      of the bytes those hours will send at that rate, past what is
                                      left of the cloud's free allowance (the one-time artifact copy
                                      is not run forward)

$/1M requests on two bases: **reservation** — everything the replicas cost ÷ requests served (what
the bill says per request) — and **usage** — only the busy share of that (Σ latency ÷
replica-seconds), what the requests would cost if nothing idled. Both are of compute only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from thrifty.monitor.egress import CloudBytes, forecast_egress, internet_egress, month_end, month_start
from thrifty.monitor.rollup import HOUR_S, DeploymentUsage, bucket_stats, floor_time, usage_of
from thrifty.monitor.usage import bucket_cost, serverless_usd
from thrifty.registry import fleet

__all__ = ["Spend", "month_end", "month_start", "month_to_date", "run_rate_usd_per_hour", "spend_between"]

TRANSFER_NOTE = (
    "transfer: response bytes the gateway logged × the cloud's internet-egress $/GiB past its free "
    "monthly allowance (shared by the deployments on that cloud), plus the plan's one-time artifact copy; "
    "requests served without the gateway, and rows logged before sizes were recorded, count 0 bytes"
)


@dataclass
class Spend:
    """Money and use over a span."""

    compute_usd: float = 0.0
    storage_usd: float = 0.0
    storage_usd_saved: float = 0.0
    egress_usd: float = 0.0
    egress_usd_saved: float = 0.0  # the free allowance's share
    artifact_copy_usd: float = 0.0
    bytes_out: int = 0
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
            "egress_usd",
            "egress_usd_saved",
            "artifact_copy_usd",
            "bytes_out",
            "requests",
            "errors",
            "replica_s",
            "busy_s",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.sources |= other.sources

    @property
    def transfer_usd(self) -> float:
        return self.egress_usd + self.artifact_copy_usd

    @property
    def total_usd(self) -> float:
        return self.compute_usd + self.storage_usd + self.transfer_usd

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
        _add_entry(spend, entry)
    for hour in fleet.rollups(registry, name, HOUR_S, start, end):
        spend.requests += hour.requests
        spend.errors += hour.errors
        spend.replica_s += hour.replica_s
        spend.busy_s += hour.busy_s
    return spend


def _add_entry(spend: Spend, entry: Any) -> None:
    if entry.kind == "compute":
        spend.compute_usd += entry.usd
    elif entry.kind == "transfer":
        spend.egress_usd += entry.usd
        spend.egress_usd_saved += entry.usd_saved
        spend.bytes_out += int(entry.quantity)
    elif entry.kind == "artifact_copy":
        spend.artifact_copy_usd += entry.usd
    else:
        spend.storage_usd += entry.usd
        spend.storage_usd_saved += entry.usd_saved
    if entry.kind in ("compute", "storage"):  # transfer sources: the egress rate table, named once
        spend.sources.add(entry.source)


def _transfer(book: CloudBytes, usage: DeploymentUsage, start: datetime, end: datetime) -> Spend:
    sent = internet_egress(book, usage, start, end)
    copy = usage.artifact_copy
    paid_copy = copy is not None and start <= usage.created_at < end
    return Spend(
        egress_usd=sent.usd,
        egress_usd_saved=sent.usd_saved,
        bytes_out=sent.bytes_out,
        artifact_copy_usd=copy.usd if copy is not None and paid_copy else 0.0,
    )


def on_the_spot(
    registry: Any, usage: DeploymentUsage, start: datetime, end: datetime, book: CloudBytes | None = None
) -> Spend:
    """``[start, end)`` computed from the request log, the replica history and the prices, as the rollup does."""
    if end <= start:
        return Spend()
    stats = bucket_stats(fleet.request_rows(registry, usage.name, start, end))
    replica_s, usd = bucket_cost(usage.replicas, usage.book, start, end)
    usd += serverless_usd(usage.offer, stats["requests"], stats["busy_s"])
    stored_from = max(start, usage.created_at)
    hours = max(0.0, (end - stored_from).total_seconds() / 3600)
    source = f"{usage.offer.label()}: {usage.book.source}" if usage.offer and usage.book else "unpriced"
    spend = _transfer(book or CloudBytes(registry), usage, start, end)
    spend.add(
        Spend(
            compute_usd=usd,
            storage_usd=usage.storage.usd_per_hour * hours,
            storage_usd_saved=usage.storage.usd_saved_per_hour * hours,
            requests=int(stats["requests"]),
            errors=int(stats["errors"]),
            replica_s=replica_s,
            busy_s=float(stats["busy_s"]),
            sources={source},
        )
    )
    return spend


def spend_between(registry: Any, usage: DeploymentUsage, start: datetime, end: datetime) -> Spend:
    """Ledger hours where the monitor has rolled them up, the rest on the spot."""
    done = fleet.cursor(registry, usage.name, HOUR_S)
    split = min(max(done or start, start), end)
    split = floor_time(split, HOUR_S) if split > start else start
    spend = from_ledger(registry, usage.name, start, split) if split > start else Spend()
    spend.add(on_the_spot(registry, usage, split, end))
    return spend


def _recent(registry: Any, usage: DeploymentUsage, now: datetime, book: CloudBytes) -> tuple[Spend, float]:
    """The last 24 h (or since the deployment began, if later) and how many hours that is."""
    start = max(now - timedelta(hours=24), usage.created_at)
    hours = (now - start).total_seconds() / 3600
    return (on_the_spot(registry, usage, start, now, book), hours) if hours > 0 else (Spend(), 0.0)


def run_rate_usd_per_hour(registry: Any, usage: DeploymentUsage, now: datetime) -> float:
    """Spend per hour over the last 24 h (or since the deployment began, if later)."""
    return outlook(registry, usage, Spend(), now)[0]


def outlook(registry: Any, usage: DeploymentUsage, spent: Spend, now: datetime) -> tuple[float, float]:
    """(run rate $/h over the last 24 h, forecast $ for the month): ``spent`` + compute and storage at
    the run rate for the hours left + the egress those hours' bytes will cost past what is left of
    the cloud's free allowance (``egress.forecast_egress``). The one-time artifact copy is not run forward."""
    book = CloudBytes(registry)
    recent, hours = _recent(registry, usage, now, book)
    hours_left = (month_end(now) - now).total_seconds() / 3600
    if hours <= 0:
        return usage.storage.usd_per_hour, spent.total_usd + usage.storage.usd_per_hour * hours_left
    rate = (recent.total_usd - recent.artifact_copy_usd) / hours
    steady = (recent.compute_usd + recent.storage_usd) / hours
    egress = forecast_egress(book, usage, now, hours_left)
    return rate, spent.total_usd + steady * hours_left + egress


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
