"""Recommendations from observed traffic: re-plan each live deployment with the traffic it really
gets, and backtest the hibernation policies on its own request log.

    observed_profile   the request log's last ``days`` per minute: rate while active, the busiest
                       minute, share of minutes with traffic, peak ÷ median (bursty or steady)
    plan_advice        the planner run again with that profile (serverless allowed when bursty) vs
                       what the deployment costs now (the ledger's last-24-h rate × 730 h): the
                       cheapest feasible candidate, named by what changes — serverless for bursty
                       traffic, a VM for steady, a more compressed variant, another cloud or region,
                       or a right-sized machine
    hibernation_advice every hibernation policy replayed on the deployment's own log
                       (``thrifty simulate --deployment``), an idle replica-hour priced at the
                       offer's $/h

Each recommendation carries its $/month saved, its evidence and how to apply it: the flow that does
it with its parameters, and the exact command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from thrifty.errors import ThriftyError

HOURS_PER_MONTH = 730.0
BURSTY_PEAK_RATIO = 5.0  # the busiest minute over 5× the median active minute
MIN_SAVING_FRACTION = 0.05
MIN_SAVING_USD = 1.0


@dataclass(frozen=True)
class Profile:
    deployment: str
    days: float
    requests: int
    rps_active: float  # mean rate over minutes with traffic
    rps_peak: float  # the busiest minute's rate
    active_fraction: float  # share of minutes with at least one request
    peak_to_median: float

    @property
    def bursty(self) -> bool:
        return self.active_fraction < 0.5 or self.peak_to_median >= BURSTY_PEAK_RATIO

    def evidence(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "requests": self.requests,
            "rps_active": round(self.rps_active, 4),
            "rps_peak": round(self.rps_peak, 4),
            "active_fraction": round(self.active_fraction, 4),
            "peak_to_median": round(self.peak_to_median, 2),
            "traffic": "bursty" if self.bursty else "steady",
        }


@dataclass(frozen=True)
class Recommendation:
    deployment: str
    kind: str  # serverless · vm · variant · cloud · region · right-size · hibernation
    title: str
    usd_per_month_now: float
    usd_per_month_after: float
    evidence: dict[str, Any]
    flow: str | None  # the Prefect deployment that applies it (FLOW/DEPLOYMENT)
    parameters: dict[str, Any] = field(default_factory=dict)
    command: str = ""

    @property
    def usd_saved_per_month(self) -> float:
        return self.usd_per_month_now - self.usd_per_month_after


def minute_counts(ats: list[datetime], start: datetime, minutes: int) -> np.ndarray[Any, Any]:
    index = np.array([int((at - start).total_seconds() // 60) for at in ats], dtype=np.int64)
    index = index[(index >= 0) & (index < minutes)]
    return np.bincount(index, minlength=minutes).astype(np.float64)


def observed_profile(registry: Any, name: str, now: datetime, days: float) -> Profile:
    minutes = max(int(days * 1440), 1)
    start = now - timedelta(minutes=minutes)
    counts = minute_counts(registry.request_times_since(name, start), start, minutes)
    active = counts[counts > 0]
    if not len(active):
        raise ThriftyError(
            f"deployment {name!r} logged no requests in the last {days:g} days",
            hint="recommendations need observed traffic: send requests through the gateway, or widen --days",
        )
    return Profile(
        deployment=name,
        days=days,
        requests=int(counts.sum()),
        rps_active=float(active.mean()) / 60,
        rps_peak=float(active.max()) / 60,
        active_fraction=len(active) / minutes,
        peak_to_median=float(active.max() / np.median(active)),
    )


def _observed_decision(
    registry: Any, settings: Any, record: dict[str, Any], profile: Profile
) -> dict[str, Any]:
    from thrifty.catalog.store import load_catalog
    from thrifty.planner.decision import plan
    from thrifty.planner.types import Slo, Traffic, perf_from_registry, recorded_minilm
    from thrifty.policies.pricewatch import replan_inputs

    inputs = replan_inputs(record)
    slo = Slo(
        **(inputs["slo"] | {"serverless_ok": profile.bursty or bool(inputs["slo"].get("serverless_ok"))})
    )
    traffic = Traffic(
        rps=max(profile.rps_peak, 1e-3), active_fraction=profile.active_fraction, scale_to_zero=profile.bursty
    )
    perf = recorded_minilm() if inputs["recorded"] else perf_from_registry(registry, inputs["model"])
    catalog = load_catalog(settings, registry)
    decision = plan(perf, catalog.table, slo, traffic, model=inputs["model"], catalog_origin=catalog.origin)
    return decision.to_dict()


def _kind(current: dict[str, Any], best: dict[str, Any]) -> tuple[str, str]:
    """What changes from the current offer to the best one, as (kind, title)."""
    where = (
        f"{best.get('provider')} {best.get('instance_type')} {best.get('region')} ({best.get('price_model')})"
    )
    if best.get("price_model") == "serverless" and current.get("price_model") != "serverless":
        return "serverless", f"serverless for this bursty traffic: {where}"
    if current.get("price_model") == "serverless" and best.get("price_model") != "serverless":
        return "vm", f"a VM for this steady traffic: {where}"
    if best.get("variant") != current.get("variant"):
        return "variant", f"variant {best.get('variant')} (accepted by the guardrail) on {where}"
    if best.get("provider") != current.get("provider"):
        return "cloud", f"a cheaper cloud: {where}"
    if best.get("region") != current.get("region"):
        return "region", f"a cheaper region: {where}"
    return "right-size", f"right-size to {best.get('machines') or 1:g} × {where}"


def _deploy_parameters(
    row: Any, record: dict[str, Any], profile: Profile, best: dict[str, Any]
) -> dict[str, Any]:
    slo = dict(record.get("slo") or {})
    return {
        "model": str(record.get("model")),
        "name": row.name,
        "p95_ms": float(slo.get("latency_ms_p95", 50.0)),
        "rps": round(max(profile.rps_peak, 1e-3), 4),
        "active_fraction": round(profile.active_fraction, 4),
        "providers": [str(best.get("provider"))],
        "serverless_ok": best.get("price_model") == "serverless",
    }


def plan_advice(
    registry: Any, settings: Any, row: Any, profile: Profile, usd_per_month_now: float
) -> Recommendation | None:
    """The planner with the observed traffic; a recommendation when it saves ≥ 5 % and ≥ $1/month."""
    plan_row = registry.get_plan(row.plan_id)
    record = dict(plan_row.record or {})
    decision = _observed_decision(registry, settings, record, profile)
    best = dict(decision.get("chosen") or {})
    after = best.get("usd_per_month")
    if after is None or usd_per_month_now - after < max(
        MIN_SAVING_USD, MIN_SAVING_FRACTION * usd_per_month_now
    ):
        return None
    kind, title = _kind(dict(record.get("chosen") or plan_row.chosen or {}), best)
    billed = best.get("billed_hours_per_month")
    if billed is not None and float(billed) < 0.99 * HOURS_PER_MONTH:
        title += f", scaled to zero between bursts ({float(billed):,.0f} billed h/month)"
    parameters = _deploy_parameters(row, record, profile, best)
    evidence = profile.evidence() | {
        "usd_per_month_now_from": "the ledger's last 24 h × 730 h",
        "best_usd_per_million_requests": best.get("usd_per_million_requests"),
        "candidates_considered": len(decision.get("candidates") or []),
    }
    return Recommendation(
        deployment=row.name,
        kind=kind,
        title=title,
        usd_per_month_now=usd_per_month_now,
        usd_per_month_after=float(after),
        evidence=evidence,
        flow="deploy-model/deploy-model",
        parameters=parameters,
        command=_run_command("deploy-model/deploy-model", parameters),
    )


def _run_command(flow: str, parameters: dict[str, Any]) -> str:
    import json
    import shlex

    return f"prefect deployment run {flow} --params {shlex.quote(json.dumps({'params': parameters}))}"


# -- hibernation ----------------------------------------------------------------------------------
def hibernation_advice(
    registry: Any, row: Any, profile: Profile, now: datetime, usd_per_gib_hour: float | None
) -> Recommendation | None:
    """Every policy replayed on the deployment's own log; the one wasting the fewest dollars of idle
    memory without more cold starts (p75) than the policy in use."""
    from thrifty.policies import POLICIES, get_policy
    from thrifty.policies.simulate import compare
    from thrifty.policies.trace_files import load_request_log

    if not usd_per_gib_hour:
        return None
    trace = load_request_log(registry, [row.name], now, profile.days)
    current = _policy_in_force(registry, row.name)
    names = sorted(set(POLICIES) - {"fixed"} | {current})
    rows = {
        s.policy: s for s in compare(trace, [get_policy(n) for n in names], usd_per_gib_hour=usd_per_gib_hour)
    }
    if current not in rows:
        return None
    now_row = rows[current]
    better = [s for s in rows.values() if s.cold_pct_p75 <= now_row.cold_pct_p75 and s.wasted_usd is not None]
    best = min(better, key=lambda s: s.wasted_usd or 0.0, default=None)
    if best is None or best.policy == current or now_row.wasted_usd is None:
        return None
    scale = 30.0 / profile.days
    saved = (now_row.wasted_usd - (best.wasted_usd or 0.0)) * scale
    if saved < MIN_SAVING_USD:
        return None
    evidence = profile.evidence() | {
        "backtest": f"`thrifty simulate --deployment {row.name} --days {profile.days:g}`",
        "current": {
            "policy": current,
            "cold_pct_p75": now_row.cold_pct_p75,
            "wasted_usd": now_row.wasted_usd,
        },
        "best": {"policy": best.policy, "cold_pct_p75": best.cold_pct_p75, "wasted_usd": best.wasted_usd},
    }
    return Recommendation(
        deployment=row.name,
        kind="hibernation",
        title=f"hibernation policy {best.policy} instead of {current}",
        usd_per_month_now=now_row.wasted_usd * scale,
        usd_per_month_after=(best.wasted_usd or 0.0) * scale,
        evidence=evidence,
        flow=None,  # applied at once: the policy is stored for this deployment, the next sweep uses it
        parameters={"policy": best.policy},
        command=f"thrifty recommend {row.name} --apply hibernation",
    )


def _policy_in_force(registry: Any, name: str) -> str:
    """The policy chosen for ``name`` (an applied recommendation), else the one the sweep last used."""
    from thrifty.policies.chosen import chosen_policy
    from thrifty.policies.sweep import policy_state

    chosen = chosen_policy(registry, name)
    if chosen is not None:
        return chosen
    return str((policy_state(registry.list_events(name)) or {}).get("policy") or "thrifty-cost-aware")


# -- every live deployment ------------------------------------------------------------------------
@dataclass(frozen=True)
class Advice:
    recommendations: list[Recommendation]
    skipped: dict[str, str]  # deployment → why nothing was recommended or could be


def _usd_per_idle_replica_hour(usage: Any, now: datetime) -> float | None:
    """What an idle replica costs per hour: its machine's price (the simulator counts one unit of
    memory per function when the log says nothing of memory, so this is its "$/GiB-hour")."""
    offer = usage.offer
    if offer is None or offer.serverless or usage.book is None:
        return None
    hourly = usage.book.usd_per_hour_at(now) if usage.book.steps else (offer.plan_usd_per_hour or 0.0)
    return hourly or None


def advise(registry: Any, settings: Any, row: Any, now: datetime, days: float) -> list[Recommendation]:
    """One deployment's recommendations, biggest saving first."""
    from thrifty.monitor.ledger import run_rate_usd_per_hour
    from thrifty.monitor.rollup import usage_of

    profile = observed_profile(registry, row.name, now, days)
    usage = usage_of(registry, row)
    found = [hibernation_advice(registry, row, profile, now, _usd_per_idle_replica_hour(usage, now))]
    if row.plan_id is not None:
        monthly = run_rate_usd_per_hour(registry, usage, now) * HOURS_PER_MONTH
        found.append(plan_advice(registry, settings, row, profile, monthly))
    return sorted((r for r in found if r is not None), key=lambda r: -r.usd_saved_per_month)


def recommend(
    registry: Any, settings: Any, now: datetime, name: str | None = None, days: float = 7.0
) -> Advice:
    """Recommendations for ``name`` (or every deployment that still exists)."""
    from thrifty.states import state_of

    rows = [registry.get_deployment(name)] if name else registry.list_deployments()
    found: list[Recommendation] = []
    skipped: dict[str, str] = {}
    for row in rows:
        if not state_of(row.state).exists:
            continue
        try:
            mine = advise(registry, settings, row, now, days)
        except ThriftyError as exc:
            skipped[row.name] = exc.message
            continue
        found += mine
        if not mine:
            skipped[row.name] = (
                "its set-up is already the cheapest for the traffic it gets (nothing saves ≥ 5 % and $1/month)"
            )
    return Advice(found, skipped)
