"""Transfer in the spend ledger: the responses a deployment sent, and the one-time artifact copy.

    internet_egress(book, usage, start, end)   (usd billed, usd the free allowance saved, bytes out)
                                               of a deployment's responses in ``[start, end)``
    artifact_copy_of(plan)                     what the plan priced for copying the variant to its
                                               cloud at deploy (usd, bytes), paid once

Egress is the response bytes the gateway logged (the HTTP messages it wrote; what a cloud bills as
data transfer out to the internet: the gateway fronts the replicas, and clients sit outside the
cloud) × the internet-egress rate of the deployment's cloud per GiB
(``artifacts.transfer.EGRESS_USD_PER_GB`` — the rate table the planner prices artifact copies with,
``EGRESS_SOURCE``), less the cloud's free monthly allowance (``EGRESS_FREE_GIB_PER_MONTH``,
``EGRESS_FREE_SOURCE``). The allowance belongs to the account, not one deployment: it covers the
month's first responses of all the deployments on that cloud, request by request in the order they
were sent (the one that crosses it is split), and every byte after that is billed to whoever sent
it. A byte's price depends only on the request log, never on the span asked about or the order
deployments are rolled up in, so the ledger's hours add up to what the same month costs on the spot. Request bytes are ingress: free on all
three clouds, counted but not priced. A deployment without a cloud offer is not priced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from thrifty.artifacts.transfer import (
    EGRESS_FREE_GIB_PER_MONTH,
    EGRESS_FREE_SOURCE,
    EGRESS_SOURCE,
    EGRESS_USD_PER_GB,
)
from thrifty.registry import fleet

GIB = float(2**30)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_end(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class EgressPrice:
    """A cloud's internet egress: per GiB, and the GiB a month that are free."""

    cloud: str
    usd_per_gib: float
    free_gib_per_month: float

    def source(self) -> str:
        free = (
            f"first {self.free_gib_per_month:g} GiB/month free" if self.free_gib_per_month else "no free tier"
        )
        return f"{self.cloud} internet egress ${self.usd_per_gib}/GiB, {free}"


SOURCES = (EGRESS_SOURCE, EGRESS_FREE_SOURCE)


def egress_price(cloud: str | None) -> EgressPrice | None:
    """``cloud``'s egress price (None: not a cloud, or one the rate table does not know)."""
    if cloud not in EGRESS_USD_PER_GB:
        return None
    return EgressPrice(cloud, EGRESS_USD_PER_GB[cloud], EGRESS_FREE_GIB_PER_MONTH.get(cloud, 0.0))


@dataclass
class CloudBytes:
    """Σ response bytes from the request log, by deployment names or by cloud; read once per span."""

    registry: Any
    _names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _sums: dict[tuple[str, datetime, datetime], int] = field(default_factory=dict)

    def of_names(self, names: tuple[str, ...], start: datetime, end: datetime) -> int:
        key = ("\0".join(names), start, end)
        if key not in self._sums:
            self._sums[key] = fleet.bytes_out(self.registry, list(names), start, end)
        return self._sums[key]

    def names_on(self, cloud: str, name: str) -> tuple[str, ...]:
        """The deployments that share ``cloud``'s allowance (``name`` among them)."""
        if cloud not in self._names:
            self._names[cloud] = tuple(fleet.deployments_on_cloud(self.registry, cloud))
        return tuple(sorted({*self._names[cloud], name}))

    def billed_in_crossing(
        self, names: tuple[str, ...], name: str, span: tuple[datetime, datetime], free_left: float
    ) -> float:
        """``name``'s bytes in ``span`` past the allowance, when the cloud's use crosses it there."""
        billed = 0.0
        for sender, size in fleet.response_sizes(self.registry, list(names), *span):
            covered = min(free_left, size)
            free_left -= covered
            if sender == name:
                billed += size - covered
        return billed


@dataclass(frozen=True)
class Egress:
    usd: float = 0.0
    usd_saved: float = 0.0  # what the free allowance took off
    bytes_out: int = 0


def _month_pieces(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    pieces, at = [], start
    while at < end:
        cut = min(month_end(at), end)
        pieces.append((at, cut))
        at = cut
    return pieces


def _billed_bytes(book: CloudBytes, name: str, price: EgressPrice, span: tuple[datetime, datetime]) -> float:
    """``name``'s bytes in ``span`` (inside one month) past the cloud's allowance."""
    mine, free_bytes = book.of_names((name,), *span), price.free_gib_per_month * GIB
    names = book.names_on(price.cloud, name)
    before = book.of_names(names, month_start(span[0]), span[0]) if free_bytes > 0 else 0
    if before >= free_bytes:
        return float(mine)
    if before + book.of_names(names, *span) <= free_bytes:
        return 0.0
    return book.billed_in_crossing(names, name, span, free_bytes - before)


def _one_month(book: CloudBytes, name: str, price: EgressPrice, start: datetime, end: datetime) -> Egress:
    mine = book.of_names((name,), start, end)
    if mine <= 0:
        return Egress()
    gross = mine / GIB * price.usd_per_gib
    usd = _billed_bytes(book, name, price, (start, end)) / GIB * price.usd_per_gib
    return Egress(usd, gross - usd, mine)


def internet_egress(book: CloudBytes, usage: Any, start: datetime, end: datetime) -> Egress:
    """What ``usage``'s deployment sent in ``[start, end)`` and what that cost (split at month ends,
    where the free allowance starts again)."""
    price = egress_price(usage.offer.provider if usage.offer is not None else None)
    if price is None:
        return Egress(bytes_out=book.of_names((usage.name,), start, end) if end > start else 0)
    parts = [_one_month(book, usage.name, price, a, b) for a, b in _month_pieces(start, end)]
    return Egress(sum(p.usd for p in parts), sum(p.usd_saved for p in parts), sum(p.bytes_out for p in parts))


def forecast_egress(book: CloudBytes, usage: Any, now: datetime, hours_left: float) -> float:
    """What the rest of the month's responses will cost: this deployment and its cloud keep sending at
    their last 24 h's rates; the bytes past what is left of the allowance are billed, shared in
    proportion (an estimate: who sends first is not known yet)."""
    price = egress_price(usage.offer.provider if usage.offer is not None else None)
    start = max(now - timedelta(hours=24), usage.created_at)
    if price is None or hours_left <= 0 or start >= now:
        return 0.0
    scale = hours_left / ((now - start).total_seconds() / 3600)  # bytes of that window → of the rest
    mine = book.of_names((usage.name,), start, now) * scale
    if mine <= 0:
        return 0.0
    names = book.names_on(price.cloud, usage.name)
    cloud = max(book.of_names(names, start, now) * scale, mine)
    free_left = max(0.0, price.free_gib_per_month * GIB - book.of_names(names, month_start(now), now))
    return float(max(0.0, cloud - free_left) * (mine / cloud) / GIB * price.usd_per_gib)


@dataclass(frozen=True)
class ArtifactCopy:
    """The plan's one-time copy of the variant to the target cloud's store, paid at deploy."""

    usd: float
    size_bytes: int
    source: str


def artifact_copy_of(plan: Any | None) -> ArtifactCopy | None:
    """What the plan priced for the copy (None: the plan did not price one, or it costs nothing)."""
    record = dict(plan.record or {}) if plan is not None else {}
    chosen, info = dict(record.get("chosen") or {}), dict(record.get("artifact_transfer") or {})
    usd = float(chosen.get("artifact_transfer_usd") or 0.0)
    if usd <= 0.0:
        return None
    size = int(dict(info.get("variant_size_bytes") or {}).get(str(chosen.get("variant")), 0))
    where = f"{info.get('source_cloud', '?')} store → {chosen.get('provider', '?')}"
    return ArtifactCopy(usd, size, f"artifact copy at deploy ({where}), as the plan priced it")
