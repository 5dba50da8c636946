"""The decision record: what was chosen, every kept candidate and why it lost, the price rows used
(with timestamps and sources), the assumptions — JSON-ready, stored via ``Registry.add_plan``.

Money values are Python floats (never numpy) everywhere in the record.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from thrifty.errors import PlanningError, SloUnreachableError
from thrifty.planner.capacity import OK, R_LATENCY, REASONS
from thrifty.planner.front_door import front_door_cost, with_front_door
from thrifty.planner.rank import Ranking, rank, requests_per_month
from thrifty.planner.types import Assumptions, Slo, Traffic

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.registry import Registry

TOP_CANDIDATES = 25


@dataclass
class Decision:
    """A plan's decision record (``to_dict`` is what the registry stores and `plan explain` reads)."""

    model: str
    slo: dict[str, Any]
    traffic: dict[str, Any]
    assumptions: dict[str, Any]
    catalog: dict[str, Any]
    chosen: dict[str, Any]
    candidates: list[dict[str, Any]]
    excluded: list[dict[str, Any]]
    variants: list[dict[str, Any]]
    price_rows: list[dict[str, Any]]
    candidates_evaluated: int
    baseline: dict[str, Any] | None = None
    break_even: dict[str, Any] | None = None
    accelerators: dict[str, Any] | None = None
    #: the always-on gateway a VM plan needs (``planner.front_door``); None for serverless
    front_door: dict[str, Any] | None = None
    #: the one-time copy of the variant to the target cloud's store (``planner.transfer``)
    artifact_transfer: dict[str, Any] | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def plan(
    perf: pd.DataFrame,
    catalog: pd.DataFrame,
    slo: Slo,
    traffic: Traffic,
    *,
    assumptions: Assumptions | None = None,
    model: str = "",
    catalog_origin: str = "",
    with_baseline: bool = True,
) -> Decision:
    """Rank everything and build the decision; SloUnreachableError names the closest candidate."""
    ranking = rank(perf, catalog, slo, traffic, assumptions)
    if ranking.feasible.empty:
        raise _unreachable(ranking)
    candidates = _kept_candidates(ranking)
    front_door = front_door_cost(catalog, candidates[0], ranking.assumptions.hours_per_month)
    baseline = _optional_baseline(perf, catalog, traffic, assumptions) if with_baseline else None
    return Decision(
        model=model,
        slo=asdict(slo),
        traffic=asdict(traffic) | {"requests_per_month": ranking.requests_per_month},
        assumptions=_assumptions_dict(ranking.assumptions),
        catalog=_catalog_summary(catalog, catalog_origin),
        chosen=with_front_door(candidates[0], front_door),
        candidates=candidates,
        excluded=_excluded_summary(ranking),
        variants=_variants_summary(ranking.configs),
        price_rows=_price_rows(candidates),
        candidates_evaluated=len(ranking.pairs),
        baseline=baseline,
        break_even=serverless_break_even(ranking),
        accelerators=accelerator_summary(ranking),
        front_door=front_door,
    )


# -- candidates --------------------------------------------------------------------------------


def _kept_candidates(ranking: Ranking) -> list[dict[str, Any]]:
    """Top feasible pairs + the cheapest per (variant, provider, option); the winner first."""
    feasible = ranking.feasible
    provider = ranking.offers["provider"].to_numpy()[feasible["offer_index"].to_numpy()]
    region = ranking.offers["region"].to_numpy()[feasible["offer_index"].to_numpy()]
    instance_type = ranking.offers["instance_type"].to_numpy()[feasible["offer_index"].to_numpy()]
    # zones of one region at one price are one candidate for the reader (the first zone stands for them)
    keyed = feasible.assign(provider=provider, region=region, instance_type=instance_type)
    feasible = feasible.loc[
        keyed.drop_duplicates(["variant_name", "provider", "region", "instance_type", "option"]).index
    ]
    groups = feasible.drop_duplicates(["variant_name", "option"]).index.union(
        feasible.assign(provider=ranking.offers["provider"].to_numpy()[feasible["offer_index"].to_numpy()])
        .drop_duplicates(["variant_name", "provider", "option"])
        .index
    )
    kept = feasible.loc[feasible.index[:TOP_CANDIDATES].union(groups)]
    winner_usd = float(feasible.iloc[0]["usd_per_month"])
    out = []
    for position, (index, pair) in enumerate(kept.iterrows()):
        row = candidate_dict(pair, ranking)
        row["rank"] = int(index) + 1
        delta = row["usd_per_month"] - winner_usd
        row["why_lost"] = None if position == 0 else f"${delta:,.2f}/month more than the chosen plan"
        out.append(row)
    return out


def candidate_dict(pair: Any, ranking: Ranking) -> dict[str, Any]:
    """One (variant × offer) as plain JSON types, with what a person needs to redo the arithmetic."""
    offer = ranking.offers.iloc[int(pair["offer_index"])]
    config = ranking.configs.iloc[int(pair["config_index"])] if pair["config_index"] >= 0 else None
    factor = offer["family_factor"] * (
        ranking.assumptions.arm64_factor if _arch_differs(offer, config) else 1.0
    )
    if config is not None and config["bench_accelerator"]:
        factor = 1.0  # accelerator benchmarks are not scaled by CPU family
    return (
        {"variant": str(pair["variant_name"])}
        | _offer_fields(offer)
        | {"family_factor": _f(factor)}
        | _config_fields(config, offer)
        | _pair_fields(pair, ranking)
    )


def _offer_fields(offer: Any) -> dict[str, Any]:
    return {
        "provider": str(offer["provider"]),
        "region": str(offer["region"]),
        "zone": str(offer["zone"]),
        "instance_type": str(offer["instance_type"]),
        "price_model": str(offer["price_model"]),
        "vcpus": _f(offer["vcpus"]),
        "memory_gib": _f(offer["memory_gib"]),
        "arch": str(offer["arch"]),
        "accelerator_name": str(offer["accelerator_name"]),
        "accelerator_count": _f(offer["accelerator_count"]),
        "usd_per_hour": _f(offer["usd_per_hour"]),
        "on_demand_usd_per_hour": _f(offer["od_usd_per_hour"]),
        "usd_per_gb_second": _f(offer["usd_per_gb_second"]),
        "usd_per_million_requests_unit": _f(offer["usd_per_million_requests"]),
        "interruption_bucket": str(offer["interruption_bucket"]),
        "observed_at": offer["observed_at"].isoformat(),
        "source": str(offer["source"]),
        "derived": bool(offer["derived"]),
    }


def _config_fields(config: Any, offer: Any) -> dict[str, Any]:
    if config is None:
        keys = (
            "batch_size",
            "threads",
            "bench_throughput_rps",
            "bench_latency_ms_p50",
            "bench_latency_ms_p95",
        )
        return dict.fromkeys(keys) | {
            "bench_cpu": "",
            "bench_accelerator": "",
            "bench_recorded": False,
            "estimated": True,
            "fidelity_score": None,
        }
    return {
        "fidelity_score": _f(config["fidelity_score"]),
        "batch_size": int(config["batch_size"]),
        "threads": int(config["threads"]),
        "bench_throughput_rps": _f(config["throughput_rps"]),
        "bench_latency_ms_p50": _f(config["latency_ms_p50"]),
        "bench_latency_ms_p95": _f(config["latency_ms_p95"]),
        "bench_cpu": str(config["cpu_model"]),
        "bench_accelerator": str(config["bench_accelerator"]),
        "bench_recorded": bool(config["recorded"]),
        "estimated": str(config["bench_instance_type"]) != str(offer["instance_type"]),
    }


def _pair_fields(pair: Any, ranking: Ranking) -> dict[str, Any]:
    a, traffic, code = ranking.assumptions, ranking.traffic, int(pair["code"])
    return {
        "option": str(pair["option"]),
        "latency_ms_p95_est": _f(pair["latency_ms_p95_est"]),
        "machines": _f(pair["machines"]),
        "copies_per_machine": _f(pair["copies_per_machine"]),
        "floor_machines": _f(pair["floor_machines"]),
        "max_utilization": float(a.max_utilization),
        "billed_hours_per_month": float(
            a.hours_per_month * (traffic.active_fraction if traffic.scale_to_zero else 1)
        ),
        "usd_per_month": _f(pair["usd_per_month"]),
        "usd_per_million_requests": _f(pair["usd_per_million_requests"]),
        "spot_risk_usd_per_month": _f(pair["spot_risk_usd_per_month"]),
        "requests_at_risk_per_month": _f(pair["requests_at_risk_per_month"]),
        "cold_start_fraction": _f(pair["cold_start_fraction"]),
        "warm_floor": _f(pair["warm_floor"]),
        "warm_floor_usd_per_month": _f(pair["warm_floor_usd_per_month"]),
        "serverless_concurrency": _f(pair["serverless_concurrency"]),
        "feasible": code == OK,
        "reason": None if code == OK else REASONS.get(code, "?"),
    }


def _arch_differs(offer: Any, config: Any) -> bool:
    return config is not None and (offer["arch"] == "arm64") != (config["bench_arch"] == "arm64")


def _f(value: Any) -> float | None:
    """A Python float (None for NaN/inf): money and sizes never leak numpy types."""
    number = float(value)
    return number if math.isfinite(number) else None


def serverless_break_even(ranking: Ranking) -> dict[str, Any] | None:
    """Traffic at which serverless costs what the cheapest dedicated offer does: for the cheapest
    pair overall (top-level keys) and for every variant with both kinds feasible (``per_variant``).

    Serverless cost = the warm floor (fixed) + a price per request; the dedicated cost is taken at
    its current machine count, so the answer holds while that count does not change.
    """
    feasible = ranking.feasible
    serverless = feasible[feasible["option"] == "serverless"]
    dedicated = feasible[feasible["option"] != "serverless"]
    if serverless.empty or dedicated.empty:
        return None
    overall = _break_even_of(serverless.iloc[0], dedicated.iloc[0], ranking)
    per_variant = []
    for variant in feasible["variant_name"].unique():
        s_rows = serverless[serverless["variant_name"] == variant]
        d_rows = dedicated[dedicated["variant_name"] == variant]
        if not s_rows.empty and not d_rows.empty:
            per_variant.append(
                {"variant": str(variant)} | _break_even_of(s_rows.iloc[0], d_rows.iloc[0], ranking)
            )
    return overall | {"per_variant": per_variant}


def _break_even_of(s_row: Any, d_row: Any, ranking: Ranking) -> dict[str, Any]:
    floor_usd = (
        float(s_row["warm_floor_usd_per_month"])
        if s_row["warm_floor_usd_per_month"] == s_row["warm_floor_usd_per_month"]
        else 0.0
    )
    usd_per_request = (float(s_row["usd_per_month"]) - floor_usd) / ranking.requests_per_month
    seconds = 3600.0 * ranking.assumptions.hours_per_month * ranking.traffic.active_fraction
    rps = max(0.0, float(d_row["usd_per_month"]) - floor_usd) / (usd_per_request * seconds)
    return {
        "serverless": _short(candidate_dict(s_row, ranking)),
        "dedicated": _short(candidate_dict(d_row, ranking)),
        "usd_per_month_serverless": float(s_row["usd_per_month"]),
        "usd_per_month_dedicated": float(d_row["usd_per_month"]),
        "usd_per_request_serverless": usd_per_request,
        "warm_floor_usd_per_month": floor_usd,
        "break_even_rps": rps,
        "cheaper_now": "serverless"
        if float(s_row["usd_per_month"]) < float(d_row["usd_per_month"])
        else "dedicated",
        "note": "serverless is cheaper below break_even_rps (req/s while active), dedicated above "
        "(at the dedicated plan's machine count)",
    }


# -- summaries -------------------------------------------------------------------------------


def _excluded_summary(ranking: Ranking) -> list[dict[str, Any]]:
    """Per reason: how many pairs failed it, and the closest example (fastest or cheapest)."""
    losers = ranking.pairs[ranking.pairs["code"] != OK]
    out = []
    for code, group in losers.groupby("code", sort=True):
        order = "latency_ms_p95_est" if code == R_LATENCY else "usd_per_month"
        example = group.sort_values(order, na_position="last").iloc[0]
        out.append(
            {
                "reason": REASONS.get(int(code), "?"),
                "count": len(group),
                "closest": _short(candidate_dict(example, ranking)),
            }
        )
    return out


def accelerator_summary(ranking: Ranking) -> dict[str, Any]:
    """Where the benchmarks ran, the required accelerator, and how many accelerator offers (per
    name) no variant could be placed on for want of a benchmark on that accelerator."""
    offers = ranking.offers
    benchmarked = {str(n) for n in ranking.configs["bench_accelerator"]}
    has = (offers["accelerator_count"] > 0) | (offers["accelerator_name"] != "")
    lacking = offers.loc[has & ~offers["accelerator_name"].isin(benchmarked - {""}), "accelerator_name"]
    counts = lacking.replace("", "unnamed").value_counts().sort_index()
    return {
        "required": ranking.slo.accelerator,
        "benchmarked_on": sorted(n or "cpu" for n in benchmarked),
        "offers_without_benchmark": {str(k): int(v) for k, v in counts.items()},
    }


def _short(row: dict[str, Any]) -> dict[str, Any]:
    keys: tuple[str, ...] = ("variant", "provider", "region", "instance_type", "accelerator_name", "option")
    keys += ("latency_ms_p95_est", "usd_per_month")
    return {k: row[k] for k in keys}


def _unreachable(ranking: Ranking) -> SloUnreachableError:
    pairs = ranking.pairs
    top_code = int(pairs["code"].max())
    reached = pairs[pairs["code"] == top_code].sort_values(["latency_ms_p95_est", "usd_per_month"])
    closest = candidate_dict(reached.iloc[0], ranking)
    counts = pairs["code"].value_counts()
    summary = "; ".join(f"{REASONS.get(int(c), '?')}: {int(n)}" for c, n in counts.sort_index().items())
    p95 = closest["latency_ms_p95_est"]
    return SloUnreachableError(
        f"no (variant × offer) meets the SLO (p95 ≤ {ranking.slo.latency_ms_p95:g} ms at {ranking.traffic.rps:g} "
        f"req/s); closest: {closest['variant']} on {closest['provider']} {closest['instance_type']} "
        f"{closest['region']} ({closest['option']}): {closest['reason']}"
        + (f", est. p95 {p95:.1f} ms" if p95 is not None else ""),
        hint=f"relax the SLO, allow more providers/spot, or add a faster variant ({summary})",
    )


def _variants_summary(configs: pd.DataFrame) -> list[dict[str, Any]]:
    keys: tuple[str, ...] = ("variant_name", "technique", "status", "fidelity_score", "batch_size", "threads")
    keys += ("latency_ms_p50", "latency_ms_p95", "throughput_rps", "peak_memory_mib", "cpu_model", "recorded")
    return [{k: _plain(row[k]) for k in keys} for row in configs.to_dict("records")]


def _plain(value: Any) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _price_rows(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys: tuple[str, ...] = ("provider", "region", "zone", "instance_type", "price_model", "usd_per_hour")
    keys += ("usd_per_gb_second", "usd_per_million_requests_unit", "interruption_bucket")
    keys += ("observed_at", "source", "derived")
    unique = {tuple(c[k] for k in keys[:5]): {k: c[k] for k in keys} for c in candidates}
    return list(unique.values())


def _catalog_summary(catalog: pd.DataFrame, origin: str) -> dict[str, Any]:
    return {
        "origin": origin,
        "rows": len(catalog),
        "observed_at_oldest": catalog["observed_at"].min().isoformat() if len(catalog) else None,
        "observed_at_newest": catalog["observed_at"].max().isoformat() if len(catalog) else None,
        "sources": sorted({str(s) for s in catalog["source"].unique()})[:20],
    }


def _assumptions_dict(a: Assumptions) -> dict[str, Any]:
    params = asdict(a)
    params["family_factors"] = dict(a.family_factors)
    params["interruptions_per_instance_month"] = dict(a.interruptions_per_instance_month)
    return params | {"notes": a.notes()}


# -- baseline and storage ------------------------------------------------------------------------

BASELINE_OFFER = ("aws", "us-east-1", "m5.xlarge", "on_demand")


def naive_baseline(
    perf: pd.DataFrame, catalog: pd.DataFrame, traffic: Traffic, assumptions: Assumptions | None = None
) -> dict[str, Any]:
    """The fp32 original on an on-demand m5.xlarge in us-east-1: cost per million and per month."""
    import pandas as pd

    from thrifty.catalog.reference import reference_table

    original = perf[perf["is_baseline"].astype(bool) & (perf["bench_accelerator"] == "")]
    if original.empty:
        raise PlanningError(
            "no baseline variant (the fp32 original benchmarked on a CPU) among the benchmark results",
            hint="benchmark the original model too; its technique must be one of original/export/onnx_export",
        )
    provider, region, instance_type, model = BASELINE_OFFER
    offer = _baseline_offer(catalog, provider, region, instance_type, model)
    if offer.empty:
        offer = _baseline_offer(reference_table(), provider, region, instance_type, model)
    first = original[original["variant_name"] == original["variant_name"].iloc[0]]
    relaxed = Slo(latency_ms_p95=1e9, spot_ok=False)
    ranking = rank(first, pd.DataFrame(offer), relaxed, traffic, assumptions)
    return candidate_dict(ranking.pairs.iloc[0], ranking) | {"label": "naive baseline: fp32 on m5.xlarge"}


def _optional_baseline(
    perf: pd.DataFrame, catalog: pd.DataFrame, traffic: Traffic, assumptions: Assumptions | None
) -> dict[str, Any] | None:
    """The naive baseline, or None when no fp32 original was benchmarked (the record then has none)."""
    try:
        return naive_baseline(perf, catalog, traffic, assumptions)
    except PlanningError:
        return None


def _baseline_offer(table: pd.DataFrame, provider: str, region: str, instance_type: str, model: str) -> Any:
    mask = (table["provider"] == provider) & (table["region"] == region)
    mask &= (table["instance_type"] == instance_type) & (table["price_model"] == model)
    return table[mask].head(1)


def save_plan(registry: Registry, decision: Decision, model_version_id: int | None = None) -> int:
    """Store the decision record; returns the plan id."""
    chosen = decision.chosen
    stored = registry.add_plan(
        model_version_id=model_version_id,
        slo=decision.slo,
        chosen=chosen,
        record=json.loads(decision.to_json()),
        usd_per_million_requests=chosen["usd_per_million_requests"],
        usd_per_month=chosen["usd_per_month"],
    )
    return int(stored.id)


def requests_per_month_for(traffic: Traffic, assumptions: Assumptions | None = None) -> float:
    return requests_per_month(traffic, assumptions or Assumptions())
