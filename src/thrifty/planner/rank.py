"""Rank every (variant × offer): capacity → cost → SLO filter → ranking, as one DataFrame.

Pure functions of DataFrames; nothing here reads the registry or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.errors import PlanningError
from thrifty.planner.capacity import (
    OK,
    OfferArrays,
    best_per_offer,
    offer_codes,
    prepare_offers,
)
from thrifty.planner.types import Assumptions, Slo, Traffic

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Ranking:
    """Every evaluated pair (``pairs``, unordered), the feasible ones ranked (``feasible``: cheapest
    first), the offers and configs they point into, and the inputs."""

    pairs: pd.DataFrame
    feasible: pd.DataFrame
    offers: pd.DataFrame
    configs: pd.DataFrame
    slo: Slo
    traffic: Traffic
    assumptions: Assumptions

    @property
    def requests_per_month(self) -> float:
        return requests_per_month(self.traffic, self.assumptions)


def requests_per_month(traffic: Traffic, assumptions: Assumptions) -> float:
    return float(traffic.rps * 3600.0 * assumptions.hours_per_month * traffic.active_fraction)


def rank(
    perf: pd.DataFrame,
    catalog: pd.DataFrame,
    slo: Slo,
    traffic: Traffic,
    assumptions: Assumptions | None = None,
) -> Ranking:
    """Evaluate every variant on every offer; feasible pairs first, cheapest first."""
    import pandas as pd

    a = assumptions or Assumptions()
    if perf.empty or catalog.empty:
        raise PlanningError(
            "nothing to rank: " + ("no benchmark results" if perf.empty else "the price table is empty"),
            hint="benchmark the model's variants / run `thrifty prices refresh`",
        )
    check_required_accelerator(perf, slo)
    offers = prepare_offers(catalog, a)
    configs = perf.reset_index(drop=True)
    pairs = _evaluate_all(offers, configs, slo, traffic, a)
    pairs = pd.concat([pairs, _floor_options(pairs, offers, traffic, a)], ignore_index=True)
    pairs["usd_per_million_requests"] = pairs["usd_per_month"] / requests_per_month(traffic, a) * 1e6
    feasible = _sorted(pairs[pairs["code"].to_numpy() == OK])
    return Ranking(pairs, feasible, offers, configs, slo, traffic, a)


def check_required_accelerator(perf: pd.DataFrame, slo: Slo) -> None:
    """``--accelerator X`` with no benchmark on X fails here, naming where the benchmarks ran."""
    required = slo.accelerator
    if required is None:
        return
    ran_on = {str(name) or "cpu" for name in perf["bench_accelerator"]}
    if (required or "cpu") not in ran_on:
        raise PlanningError(
            f"the SLO requires {required or 'CPU-only'} offers, but no variant was benchmarked on "
            f"{required or 'a CPU'} (benchmarks ran on: {', '.join(sorted(ran_on))})",
            hint=f"benchmark the variants on a machine with {required or 'no accelerator'} "
            "(the harness records the accelerator it ran on), or drop --accelerator",
        )


def _evaluate_all(
    offers: pd.DataFrame, configs: pd.DataFrame, slo: Slo, traffic: Traffic, a: Assumptions
) -> Any:
    """One block of rows per variant (all offers), built from numpy arrays."""
    import pandas as pd

    arrays = OfferArrays.of(offers, a)
    base = offer_codes(offers, slo)
    names, blocks = [], []
    for code, (variant, group) in enumerate(configs.groupby("variant_name", sort=True)):
        best = best_per_offer(group, arrays, base, traffic, slo, a)
        best["config_index"] = np.where(
            best["config"] >= 0, group.index.to_numpy()[np.maximum(best["config"], 0)], -1
        )
        fidelity = pd.to_numeric(group["fidelity_score"], errors="coerce").max()
        best["fidelity_score"] = np.full(len(offers), 0.0 if pd.isna(fidelity) else float(fidelity))
        best["variant_code"] = np.full(len(offers), code)
        best["offer_index"] = np.arange(len(offers))
        del best["config"]
        names.append(str(variant))
        blocks.append(best)
    columns = {key: np.concatenate([block[key] for block in blocks]) for key in blocks[0]}
    pairs = pd.DataFrame(columns)
    pairs["variant_name"] = pd.Categorical.from_codes(pairs.pop("variant_code"), categories=names)
    pairs["option"] = offers["price_model"].to_numpy(dtype=object)[columns["offer_index"]]
    pairs["floor_machines"] = 0.0
    return pairs


def _sorted(pairs: pd.DataFrame) -> pd.DataFrame:
    """Cheapest first; at equal cost the more faithful variant, then the faster one."""
    usd = np.nan_to_num(pairs["usd_per_month"].to_numpy(dtype="float64"), nan=np.inf)
    latency = np.nan_to_num(pairs["latency_ms_p95_est"].to_numpy(dtype="float64"), nan=np.inf)
    order = np.lexsort((latency, -pairs["fidelity_score"].to_numpy(), usd))
    return pairs.take(order).reset_index(drop=True)


def _floor_options(
    pairs: pd.DataFrame, offers: pd.DataFrame, traffic: Traffic, a: Assumptions
) -> pd.DataFrame:
    """Spot pairs with ≥ 2 machines, re-priced with an on-demand floor of the same type."""
    od = offers["od_usd_per_hour"].to_numpy()[pairs["offer_index"].to_numpy()]
    spot_price = offers["usd_per_hour"].to_numpy()[pairs["offer_index"].to_numpy()]
    mask = (pairs["option"] == "spot").to_numpy() & (pairs["code"] == OK).to_numpy()
    mask &= (pairs["machines"] >= 2).to_numpy() & ~np.isnan(od)
    floor = pairs[mask].copy()
    if floor.empty:
        return floor
    machines = floor["machines"].to_numpy()
    floor_machines = np.clip(np.ceil(machines * a.on_demand_floor_fraction), 1, machines - 1)
    spot_share = (machines - floor_machines) / machines
    hours = a.hours_per_month * (traffic.active_fraction if traffic.scale_to_zero else 1.0)
    compute = floor_machines * od[mask] * hours + (machines - floor_machines) * spot_price[mask] * hours
    floor["spot_risk_usd_per_month"] *= spot_share
    floor["requests_at_risk_per_month"] *= spot_share
    floor["usd_per_month"] = compute + floor["spot_risk_usd_per_month"]
    floor["floor_machines"] = floor_machines
    floor["option"] = "spot+on_demand_floor"
    return floor
