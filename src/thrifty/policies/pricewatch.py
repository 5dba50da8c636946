"""Is a live deployment's plan still the cheapest? Pure comparisons for the ``price-monitor`` flow.

The flow re-runs the planner (same SLO, traffic and model as the stored plan) against the fresh
price table; ``cheaper_offer`` compares the new best offer with what the deployment runs on now,
repriced from the same fresh table when it is still a candidate (else the stored plan's cost).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from thrifty.errors import ConfigError

OFFER_KEYS = ("variant", "provider", "region", "zone", "instance_type", "price_model")


@dataclass(frozen=True)
class CheaperOffer:
    deployment: str
    current_usd_per_month: float
    best_usd_per_month: float
    saving_usd_per_month: float
    saving_fraction: float
    current: dict[str, Any]
    best: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return asdict(self)


def offer_key(candidate: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(candidate.get(k, "")) for k in OFFER_KEYS)


def replan_inputs(record: Mapping[str, Any]) -> dict[str, Any]:
    """model, slo, traffic and whether recorded benchmark numbers were used, from a stored plan."""
    try:
        slo = dict(record["slo"])
        traffic = {k: v for k, v in dict(record["traffic"]).items() if k != "requests_per_month"}
        model = str(record["model"])
    except KeyError as exc:
        raise ConfigError(
            f"the stored plan record lacks {exc.args[0]!r}", hint="re-plan the deployment with `thrifty plan`"
        ) from None
    for key in ("providers", "regions"):
        if slo.get(key) is not None:
            slo[key] = tuple(slo[key])
    recorded = any(bool(v.get("recorded")) for v in record.get("variants", []))
    return {"model": model, "slo": slo, "traffic": traffic, "recorded": recorded}


def current_cost(
    chosen: Mapping[str, Any], stored_usd_per_month: float | None, candidates: Sequence[Mapping[str, Any]]
) -> float | None:
    """What the deployment's offer costs at the fresh prices (a candidate again), else as stored."""
    key = offer_key(chosen)
    for candidate in candidates:
        if offer_key(candidate) == key and candidate.get("usd_per_month") is not None:
            return float(candidate["usd_per_month"])
    return None if stored_usd_per_month is None else float(stored_usd_per_month)


def cheaper_offer(
    deployment: str,
    chosen: Mapping[str, Any],
    stored_usd_per_month: float | None,
    new_decision: Mapping[str, Any],
    *,
    threshold_fraction: float,
    min_saving_usd_per_month: float = 0.0,
) -> CheaperOffer | None:
    """The new best offer when it beats the current one by more than the threshold, else None."""
    if not 0 <= threshold_fraction < 1:
        raise ConfigError(
            f"threshold_fraction={threshold_fraction}", hint="use a fraction in [0, 1), e.g. 0.1"
        )
    best = dict(new_decision["chosen"])
    now = current_cost(chosen, stored_usd_per_month, new_decision.get("candidates", []))
    if now is None or now <= 0 or offer_key(best) == offer_key(chosen):
        return None
    best_usd = float(best["usd_per_month"])
    saving = now - best_usd
    if saving <= threshold_fraction * now or saving < min_saving_usd_per_month:
        return None
    return CheaperOffer(
        deployment=deployment,
        current_usd_per_month=float(now),
        best_usd_per_month=best_usd,
        saving_usd_per_month=float(saving),
        saving_fraction=float(saving / now),
        current={k: chosen.get(k) for k in OFFER_KEYS},
        best={k: best.get(k) for k in (*OFFER_KEYS, "usd_per_hour", "usd_per_million_requests")},
    )
