"""Capacity and cost of every (variant × offer), vectorized over the offers with numpy.

For each variant, every benchmarked configuration (batch, threads) is tried on every offer; the
configuration that gets furthest through the checks — and among feasible ones the cheapest — is
kept, with a reason code saying why the pair fails (:data:`REASONS`). Offer-level checks (provider,
region, required accelerator, spot, interruption bucket, burstable, unknown shape) come first, then
whether the configuration was benchmarked on the offer's accelerator (or on a CPU for a CPU-only
offer), then variant checks (status, fidelity), then configuration checks (vCPUs, memory, latency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.catalog.schema import INTERRUPTION_BUCKETS
from thrifty.planner.types import Assumptions, Slo, Traffic
from thrifty.targets import cloud_attribute

if TYPE_CHECKING:
    import pandas as pd

#: reason codes, in the order the checks run; a higher code got further; OK means feasible
REASONS = {
    1: "provider not allowed",
    2: "region not allowed",
    3: "not the required accelerator",
    4: "spot not allowed (pass --spot-ok)",
    5: "interruption bucket worse than allowed",
    6: "serverless not allowed",
    7: "burstable type (CPU credits)",
    8: "shape unknown (no vCPUs/memory)",
    9: "accelerator offer without a benchmark on that accelerator (CPU results never stand in for it)",
    10: "benchmarked on an accelerator this offer lacks (GPU results never stand in for CPUs)",
    11: "fractional accelerator share (the benchmark ran on a whole one)",
    12: "variant rejected",
    13: "variant not accepted",
    14: "fidelity below the minimum",
    15: "serverless runs batch 1 only",
    16: "too few vCPUs for the benchmarked threads",
    17: "memory does not fit",
    18: "p95 latency over the SLO",
}
OK = 19
R_REQUIRED, R_SPOT, R_BUCKET, R_SERVERLESS = 3, 4, 5, 6
R_NO_ACCEL_BENCH, R_LACKS_ACCEL, R_FRACTIONAL = 9, 10, 11
R_REJECTED, R_NOT_ACCEPTED, R_FIDELITY = 12, 13, 14
R_BATCH, R_VCPUS, R_MEMORY, R_LATENCY = 15, 16, 17, 18

_BURSTABLE = r"^(t\d[a-z]*\.|e2-(micro|small|medium)$|f1-micro$|g1-small$|Standard_B)"


def prepare_offers(catalog: pd.DataFrame, assumptions: Assumptions) -> pd.DataFrame:
    """The catalog plus the columns the capacity model needs (family, factor, burstable, …).

    Zones of one region at one price collapse into one offer; string work runs once per distinct
    (provider, instance_type), not once per row.
    """

    # zones of one region that quote the same price are one offer (the first zone stands for them)
    same = catalog.duplicated(subset=["provider", "region", "instance_type", "price_model", "usd_per_hour"])
    offers = catalog[~same.to_numpy()].reset_index(drop=True)
    types = offers[["provider", "instance_type"]].drop_duplicates()
    types = types.assign(family=_family(types), burstable=types["instance_type"].str.match(_BURSTABLE))
    types["family_factor"] = types["family"].map(lambda f: float(assumptions.family_factors.get(f, 1.0)))
    on_demand = offers[offers["price_model"] == "on_demand"]
    od = on_demand.groupby(["provider", "region", "instance_type"], as_index=False)["usd_per_hour"].min()
    od = od.rename(columns={"usd_per_hour": "od_usd_per_hour"})
    rates = assumptions.interruptions_per_instance_month
    out = offers.merge(types, on=["provider", "instance_type"], how="left")
    out = out.merge(od, on=["provider", "region", "instance_type"], how="left")
    out["interruptions_per_month"] = _per_label(
        out["interruption_bucket"], lambda b: float(rates.get(b, rates.get("", 0.2)))
    )
    return out


def _per_label(labels: pd.Series, value_of: Any) -> np.ndarray:
    """``value_of(label)`` for each row, computed once per distinct label (fast on long string columns)."""
    import pandas as pd

    codes, uniques = pd.factorize(labels)
    values = np.array([value_of(label) for label in uniques], dtype="float64")
    return np.asarray(values[codes])


def _family(types: pd.DataFrame) -> np.ndarray:
    """Each instance type's family, by its cloud's rule (the target descriptor's ``family``)."""
    import pandas as pd

    keys = types["provider"].astype(str) + "|" + types["instance_type"].astype(str)
    codes, uniques = pd.factorize(keys)
    return np.asarray(np.array([_family_of(k) for k in uniques], dtype=object)[codes])


def _family_of(key: str) -> str:
    cloud, _, instance_type = key.partition("|")
    rule = cloud_attribute(cloud, "family")
    return rule(instance_type) if callable(rule) else instance_type


def offer_codes(offers: pd.DataFrame, slo: Slo) -> np.ndarray:
    """Offer-level reason code per offer (0 = passes); the first failing check wins."""
    codes = np.zeros(len(offers), dtype=np.int16)
    ranks = {label: i for i, label in enumerate(INTERRUPTION_BUCKETS)}
    worst = len(INTERRUPTION_BUCKETS) - 1
    checks: list[tuple[int, Any]] = []
    if slo.providers:
        checks.append((1, ~offers["provider"].isin(slo.providers)))
    if slo.regions:
        checks.append((2, ~offers["region"].isin(slo.regions)))
    if slo.accelerator is not None:
        checks.append((R_REQUIRED, offers["accelerator_name"] != slo.accelerator))
    spot = offers["price_model"] == "spot"
    if not slo.spot_ok:
        checks.append((R_SPOT, spot))
    if slo.max_interruption_bucket is not None:
        limit = ranks[slo.max_interruption_bucket]
        bucket = _per_label(offers["interruption_bucket"], lambda b: ranks.get(b, worst))
        checks.append((R_BUCKET, spot & (bucket > limit)))
    if not slo.serverless_ok:
        checks.append((R_SERVERLESS, offers["price_model"] == "serverless"))
    checks.append((7, offers["burstable"]))
    checks.append((8, offers["vcpus"].isna() | offers["memory_gib"].isna()))
    for code, mask in reversed(checks):  # earlier checks overwrite later ones
        codes[np.asarray(mask, dtype=bool)] = code
    return codes


def variant_code(config: Any, slo: Slo) -> int:
    """Variant-level reason code (0 = passes)."""
    if config.status == "rejected":
        return R_REJECTED
    if slo.accepted_only and config.status != "accepted":
        return R_NOT_ACCEPTED
    score = config.fidelity_score
    if slo.min_fidelity is not None and (score is None or math.isnan(score) or score < slo.min_fidelity):
        return R_FIDELITY
    return 0


@dataclass
class OfferArrays:
    """The offer columns as numpy arrays (built once per plan)."""

    vcpus: np.ndarray
    memory_mib: np.ndarray
    usd_per_hour: np.ndarray
    od_usd_per_hour: np.ndarray
    usd_per_gb_second: np.ndarray
    usd_per_million_requests: np.ndarray
    serverless: np.ndarray
    spot: np.ndarray
    arm64: np.ndarray
    factor: np.ndarray
    interruptions: np.ndarray
    accelerator: np.ndarray
    accelerator_count: np.ndarray
    #: serverless: one request per instance at a time (Lambda) or as many as the vCPUs run
    one_at_a_time: np.ndarray
    warm_fraction: np.ndarray

    @classmethod
    def of(cls, offers: pd.DataFrame, a: Assumptions | None = None) -> OfferArrays:
        fractions = (a or Assumptions()).warm_floor_price_fraction

        def col(name: str) -> np.ndarray:
            return np.asarray(offers[name].to_numpy(dtype="float64"))

        return cls(
            vcpus=col("vcpus"),
            memory_mib=col("memory_gib") * 1024.0,
            usd_per_hour=col("usd_per_hour"),
            od_usd_per_hour=col("od_usd_per_hour"),
            usd_per_gb_second=col("usd_per_gb_second"),
            usd_per_million_requests=col("usd_per_million_requests"),
            serverless=(offers["price_model"] == "serverless").to_numpy(),
            spot=(offers["price_model"] == "spot").to_numpy(),
            arm64=(offers["arch"] == "arm64").to_numpy(),
            factor=col("family_factor"),
            interruptions=col("interruptions_per_month"),
            accelerator=offers["accelerator_name"].to_numpy(dtype=object),
            accelerator_count=col("accelerator_count"),
            one_at_a_time=offers["instance_type"].astype(str).str.startswith("lambda-").to_numpy(),
            warm_fraction=_per_label(offers["provider"], lambda p: float(fractions.get(p, 0.3))),
        )

    @property
    def has_accelerator(self) -> np.ndarray:
        return np.asarray((self.accelerator_count > 0) | (self.accelerator != ""))


FIELDS = (
    "latency_ms_p95_est",
    "machines",
    "copies_per_machine",
    "usd_per_month",
    "spot_risk_usd_per_month",
    "requests_at_risk_per_month",
    "cold_start_fraction",
    "warm_floor",
    "warm_floor_usd_per_month",
    "serverless_concurrency",
)


def evaluate_config(
    config: Any, arrays: OfferArrays, traffic: Traffic, slo: Slo, a: Assumptions
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reason code and cost fields of one benchmarked configuration on every offer."""
    on_gpu = bool(config.bench_accelerator)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = speed_factor(config, arrays.factor, arrays.arm64, a)
        peak_mib = config.peak_memory_mib if config.peak_memory_mib == config.peak_memory_mib else None
        peak_mib = peak_mib or a.default_peak_memory_mib
        copies_cpu = np.floor(arrays.vcpus / config.threads)
        copies_mem = np.floor((arrays.memory_mib - a.memory_reserve_mib) / peak_mib)
        copies = np.minimum(copies_cpu, copies_mem)
        if on_gpu:  # one copy per accelerator: the benchmark ran on one
            copies = np.minimum(copies, np.floor(arrays.accelerator_count))
        serverless_cpu = np.ceil(arrays.vcpus) >= config.threads
        serverless_mem = arrays.memory_mib >= peak_mib + a.serverless_overhead_mib
        cpu_ok = np.where(arrays.serverless, serverless_cpu, copies_cpu >= 1)
        mem_ok = np.where(arrays.serverless, serverless_mem, copies_mem >= 1)
        fields = _costs(config, arrays, traffic, a, factor, copies)
        fields |= serverless_fields(config, arrays, traffic, slo, a, factor)
        cold = arrays.serverless & (fields["cold_start_fraction"] >= 0.05)
        p95 = np.where(
            cold, a.serverless_cold_start_ms + config.latency_ms_p50 / factor, config.latency_ms_p95 / factor
        )
        code = np.full(arrays.vcpus.shape, OK, dtype=np.int16)
        code[p95 > slo.latency_ms_p95] = R_LATENCY
        code[~mem_ok] = R_MEMORY
        code[~cpu_ok] = R_VCPUS
        if config.batch_size > 1:
            code[arrays.serverless] = R_BATCH
        code = accelerator_codes(str(config.bench_accelerator), arrays, code)
        fields["usd_per_month"] = fields["usd_per_month"] + np.nan_to_num(fields["warm_floor_usd_per_month"])
    fields["latency_ms_p95_est"] = p95
    return code, fields


def serverless_fields(
    config: Any, arrays: OfferArrays, traffic: Traffic, slo: Slo, a: Assumptions, factor: np.ndarray
) -> dict[str, np.ndarray]:
    """Cold starts and the warm floor of every serverless offer (NaN elsewhere).

    Instances busy at once while active = rps x duration / concurrency; each active period starts
    those above the warm floor cold, and without a floor a request after an idle gap longer than
    the platform's keep-warm finds no instance (Poisson arrivals: exp(-rps x keep_warm)).
    """
    duration_s = config.latency_ms_p50 / factor / 1000.0
    concurrency = np.where(
        arrays.one_at_a_time, 1.0, np.maximum(1.0, np.floor(arrays.vcpus / config.threads))
    )
    needed = np.maximum(1.0, np.ceil(traffic.rps * duration_s / concurrency))
    active_s = 3600.0 * a.hours_per_month * traffic.active_fraction
    periods = max(1.0, active_s / a.serverless_active_period_s) if traffic.active_fraction < 1 else 1.0
    requests = traffic.rps * active_s
    floor = float(slo.warm_floor)
    cold = periods * np.maximum(needed - floor, 0.0) / requests
    if floor < 1:
        cold = cold + math.exp(-traffic.rps * a.serverless_keep_warm_s)
    warm_usd = floor * (arrays.memory_mib / 1024.0) * arrays.usd_per_gb_second * arrays.warm_fraction
    warm_usd = warm_usd * 3600.0 * a.hours_per_month
    nan = np.full(arrays.vcpus.shape, np.nan)
    return {
        "cold_start_fraction": np.where(arrays.serverless, np.minimum(cold, 1.0), nan),
        "warm_floor": np.where(arrays.serverless, floor, nan),
        "warm_floor_usd_per_month": np.where(arrays.serverless, warm_usd, nan),
        "serverless_concurrency": np.where(arrays.serverless, concurrency, nan),
    }


def speed_factor(config: Any, family: np.ndarray, arm64: np.ndarray, a: Assumptions) -> np.ndarray:
    """How much faster than measured a configuration runs on each offer: the family factor (x the
    arm64 factor across architectures) for CPU benchmarks, 1.0 for accelerator benchmarks."""
    if config.bench_accelerator:
        return np.ones_like(family)
    return np.asarray(family * np.where(arm64 != (config.bench_arch == "arm64"), a.arm64_factor, 1.0))


def accelerator_codes(bench_accelerator: str, arrays: OfferArrays, code: np.ndarray) -> np.ndarray:
    """Offers whose accelerator does not match where the configuration was benchmarked fail."""
    has = arrays.has_accelerator
    code = code.copy()
    if bench_accelerator:
        same = arrays.accelerator == bench_accelerator
        code[same & (arrays.accelerator_count < 1)] = R_FRACTIONAL
        code[~has] = R_LACKS_ACCEL
        code[has & ~same] = R_NO_ACCEL_BENCH
    else:
        code[has] = R_NO_ACCEL_BENCH
    return code


def _costs(
    config: Any, arrays: OfferArrays, traffic: Traffic, a: Assumptions, factor: np.ndarray, copies: np.ndarray
) -> dict[str, np.ndarray]:
    requests_per_month = traffic.rps * 3600.0 * a.hours_per_month * traffic.active_fraction
    billed_hours = a.hours_per_month * (traffic.active_fraction if traffic.scale_to_zero else 1.0)
    rps_per_machine = copies * config.throughput_rps * factor * a.max_utilization
    machines = np.maximum(
        a.min_replicas, np.ceil(traffic.rps / np.where(copies >= 1, rps_per_machine, np.nan))
    )
    compute = machines * arrays.usd_per_hour * billed_hours
    interruptions = (
        np.where(arrays.spot, machines * arrays.interruptions, 0.0) * billed_hours / a.hours_per_month
    )
    at_risk = interruptions * a.rewarm_s * traffic.rps / machines
    risk = at_risk * a.usd_per_lost_request + interruptions * a.rewarm_s / 3600.0 * arrays.usd_per_hour
    duration_s = config.latency_ms_p50 / factor / 1000.0
    serverless = requests_per_month * duration_s * (arrays.memory_mib / 1024.0) * arrays.usd_per_gb_second
    serverless += requests_per_month / 1e6 * arrays.usd_per_million_requests
    usd_per_month = np.where(arrays.serverless, serverless, compute + risk)
    return {
        "machines": np.where(arrays.serverless, np.nan, machines),
        "copies_per_machine": np.where(arrays.serverless, np.nan, copies),
        "usd_per_month": usd_per_month,
        "spot_risk_usd_per_month": np.where(arrays.spot, risk, 0.0),
        "requests_at_risk_per_month": np.where(arrays.spot, at_risk, 0.0),
    }


def best_per_offer(
    configs: pd.DataFrame,
    arrays: OfferArrays,
    base_codes: np.ndarray,
    traffic: Traffic,
    slo: Slo,
    a: Assumptions,
) -> dict[str, np.ndarray]:
    """For one variant: the configuration that got furthest (then cheapest / fastest) per offer."""
    n = len(base_codes)
    best: dict[str, np.ndarray] = {"code": np.zeros(n, dtype=np.int16), "config": np.full(n, -1)}
    best |= {name: np.full(n, np.nan) for name in FIELDS}
    secondary = np.full(n, np.inf)
    for index, config in enumerate(configs.itertuples(index=False)):
        code, fields = evaluate_config(config, arrays, traffic, slo, a)
        vcode = variant_code(config, slo)
        if vcode:
            code = np.where(code >= R_BATCH, vcode, code).astype(np.int16)
        code = np.where(base_codes > 0, base_codes, code)
        second = np.where(code == OK, fields["usd_per_month"], fields["latency_ms_p95_est"])
        second = np.nan_to_num(second, nan=np.inf)
        better = (code > best["code"]) | ((code == best["code"]) & (second < secondary))
        for name in FIELDS:
            best[name] = np.where(better, fields[name], best[name])
        best["code"] = np.where(better, code, best["code"]).astype(np.int16)
        best["config"] = np.where(better, index, best["config"])
        secondary = np.where(better, second, secondary)
    return best
