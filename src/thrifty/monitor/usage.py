"""What a deployment used and what it cost at the price in force: replica history × price history.

    replica_steps(events, row)   replicas over time, from the deployment's events (deploy, scale,
                                 hibernate, wake, delete) and its row as it is now
    offer_of(row, plan)          the offer a deployment stands for (its spec, else its plan's choice)
    price_book(registry, offer)  that offer's usd/hour over time from price_quotes: the offer's own
                                 price model first (spot history for spot), then on-demand, then the
                                 price the plan saw
    bucket_cost(...)             replica-seconds and dollars in [start, end), split at every change

All pure except ``price_book`` (one read of the price history). Times are UTC-aware.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from thrifty.states import state_of

_SCALED_TO = re.compile(r"→\s*(\d+)")
_REPLICAS = re.compile(r"(\d+)\s+replica")
ZERO_KINDS = frozenset({"hibernate", "delete", "deleted", "failed"})
START_KINDS = frozenset({"deploy", "deployed", "wake", "rollback", "revision"})


@dataclass(frozen=True)
class Step:
    """A step function's value from ``at`` until the next step."""

    at: datetime
    value: float


def value_at(steps: Sequence[Step], at: datetime, before: float) -> float:
    """The step function at ``at`` (``before`` until its first step)."""
    index = bisect.bisect_right([s.at for s in steps], at) - 1
    return before if index < 0 else steps[index].value


def _replicas_after(event: Any, spec_replicas: int) -> int | None:
    """Replicas right after ``event``; None when the event does not change them."""
    details = event.details or {}
    if isinstance(details.get("replicas"), int):
        return int(details["replicas"])
    kind, reason = str(event.kind), str(event.reason or "")
    if kind in ZERO_KINDS:
        return 0
    if kind == "scale":
        found = _SCALED_TO.search(reason)
        return int(found.group(1)) if found else None
    if kind in START_KINDS:
        found = _REPLICAS.search(reason)
        return int(found.group(1)) if found else max(1, spec_replicas)
    return None


def replica_steps(events: Sequence[Any], row: Any) -> list[Step]:
    """Replicas over time: one step per event that changes them, then the row's present state."""
    spec_replicas = int((row.spec or {}).get("replicas", row.replicas or 1))
    steps: list[Step] = []
    for event in sorted(events, key=lambda e: e.at):
        replicas = _replicas_after(event, spec_replicas)
        if replicas is not None and (not steps or steps[-1].value != replicas):
            steps.append(Step(event.at, float(replicas)))
    now = float(row.replicas) if state_of(row.state).exists and row.state != "hibernated" else 0.0
    last = steps[-1] if steps else None
    if last is None or (last.value != now and row.updated_at >= last.at):
        steps.append(Step(row.updated_at if last else row.created_at, now))
    return steps


@dataclass(frozen=True)
class Offer:
    """Where a deployment's replicas are billed (its cloud offer), with the plan's prices as a fallback."""

    provider: str
    region: str
    zone: str
    instance_type: str
    price_model: str
    plan_usd_per_hour: float | None
    usd_per_million_requests_unit: float | None = None
    usd_per_gb_second: float | None = None
    memory_gib: float | None = None

    @property
    def serverless(self) -> bool:
        return self.price_model == "serverless"

    def label(self) -> str:
        return f"{self.provider} {self.instance_type} {self.region} ({self.price_model})"


def _pick(spec: dict[str, Any], chosen: dict[str, Any], key: str, default: str = "") -> str:
    value = spec.get(key)
    if value in (None, "", "local"):
        value = chosen.get(key)
    return str(value) if value not in (None, "") else default


def offer_of(row: Any, plan: Any | None) -> Offer | None:
    """The offer ``row`` stands for: its spec's place, else its plan's chosen offer; None: unpriced."""
    spec = dict(row.spec or {})
    chosen = dict((plan.record or {}).get("chosen") or plan.chosen or {}) if plan is not None else {}
    provider = str(chosen.get("provider") or ("" if row.provider == "local" else row.provider))
    instance_type = _pick(spec, chosen, "instance_type")
    if not provider or not instance_type:
        return None
    return Offer(
        provider=provider,
        region=_pick(spec, chosen, "region"),
        zone=str(chosen.get("zone") or ""),
        instance_type=instance_type,
        price_model=_pick(spec, chosen, "price_model", "on_demand"),
        plan_usd_per_hour=_number(chosen.get("usd_per_hour")),
        usd_per_million_requests_unit=_number(chosen.get("usd_per_million_requests_unit")),
        usd_per_gb_second=_number(chosen.get("usd_per_gb_second")),
        memory_gib=_number(chosen.get("memory_gib")),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class PriceBook:
    """An offer's usd/hour over time and where it came from."""

    offer: Offer
    steps: list[Step]
    source: str

    def usd_per_hour_at(self, at: datetime) -> float:
        first = self.steps[0].value if self.steps else 0.0
        return value_at(self.steps, at, first)


def price_book(registry: Any, offer: Offer) -> PriceBook:
    """The price history in force for ``offer``: its own price model, then on-demand, then the plan's."""
    models = [offer.price_model] + (["on_demand"] if offer.price_model == "spot" else [])
    for model in models:
        rows = registry.price_history(offer.provider, offer.region, offer.instance_type, model)
        same_zone = [r for r in rows if r.zone == offer.zone]
        rows = same_zone or rows
        steps = [Step(r.observed_at, float(r.usd_per_hour)) for r in rows if r.usd_per_hour is not None]
        if steps:
            return PriceBook(offer, steps, f"price_quotes {model} ({len(steps)} quotes)")
    if offer.plan_usd_per_hour is not None:
        return PriceBook(offer, [], "the plan's price (no quote history)")
    return PriceBook(offer, [], "no price known")


def _edges(start: datetime, end: datetime, *series: Sequence[Step]) -> list[datetime]:
    inside = {s.at for steps in series for s in steps if start < s.at < end}
    return [start, *sorted(inside), end]


def bucket_cost(
    replicas: Sequence[Step], book: PriceBook | None, start: datetime, end: datetime
) -> tuple[float, float]:
    """(replica-seconds, usd) of the machines in ``[start, end)``; serverless machines cost nothing."""
    prices = book.steps if book else []
    edges = _edges(start, end, replicas, prices)
    replica_s = usd = 0.0
    for left, right in itertools.pairwise(edges):
        seconds = (right - left).total_seconds() * value_at(replicas, left, 0.0)
        replica_s += seconds
        if book is not None and not book.offer.serverless:
            hourly = book.usd_per_hour_at(left) if book.steps else (book.offer.plan_usd_per_hour or 0.0)
            usd += seconds / 3600.0 * hourly
    return replica_s, usd


def serverless_usd(offer: Offer | None, requests: int, busy_s: float) -> float:
    """A serverless offer's bill for ``requests`` that kept it busy ``busy_s`` seconds."""
    if offer is None or not offer.serverless:
        return 0.0
    per_request = (offer.usd_per_million_requests_unit or 0.0) / 1e6
    per_gb_s = (offer.usd_per_gb_second or 0.0) * (offer.memory_gib or 0.0)
    return requests * per_request + busy_s * per_gb_s


# -- storage --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StorageUse:
    """The blobs a deployment keeps (its model version and every variant of it), by tier, and their price."""

    bytes_by_tier: dict[str, int]
    usd_per_hour: float
    usd_saved_per_hour: float  # against keeping every blob hot
    cloud: str


def _version_blobs(registry: Any, variant_id: int) -> tuple[int, dict[str, tuple[int, str]]]:
    variant = registry.get_variant(variant_id)
    version = registry.get_model_version_by_id(variant.model_version_id)
    blobs = {version.artifact.sha256: (version.artifact.size_bytes, version.artifact.storage_tier)}
    for other in registry.list_variants(version.id):
        blobs[other.artifact.sha256] = (other.artifact.size_bytes, other.artifact.storage_tier)
    return int(version.id), blobs


def _sharers(registry: Any, version_id: int) -> int:
    """How many existing deployments serve a variant of ``version_id`` (one query at any fleet size)."""
    from thrifty.registry import fleet

    states = fleet.states_serving_version(registry, version_id)
    return max(sum(1 for state in states if state_of(state).exists), 1)


def storage_use(registry: Any, row: Any, offer: Offer | None) -> StorageUse:
    """Storage priced at the offer's cloud classes (S3 for an unpriced local deployment); a model
    version that several deployments serve is split evenly between them."""
    from thrifty.artifacts.lifecycle import BYTES_PER_GB, DAYS_PER_MONTH, STORAGE_CLASSES
    from thrifty.errors import NotFoundError

    cloud = offer.provider if offer is not None and offer.provider in STORAGE_CLASSES else "aws"
    if row.variant_id is None:
        return StorageUse({}, 0.0, 0.0, cloud)
    try:
        version_id, blobs = _version_blobs(registry, row.variant_id)
    except NotFoundError:
        return StorageUse({}, 0.0, 0.0, cloud)
    share = 1.0 / _sharers(registry, version_id)
    classes = STORAGE_CLASSES[cloud]
    by_tier: dict[str, int] = {}
    usd = saved = 0.0
    for size, tier in blobs.values():
        by_tier[tier] = by_tier.get(tier, 0) + size
        gb_hours = size / BYTES_PER_GB * share / (DAYS_PER_MONTH * 24)
        usd += gb_hours * classes.get(tier, classes["hot"]).usd_per_gb_month
        saved += gb_hours * (
            classes["hot"].usd_per_gb_month - classes.get(tier, classes["hot"]).usd_per_gb_month
        )
    return StorageUse(by_tier, usd, saved, cloud)
