"""Typed inputs of the planner: measured variant performance, the SLO, the traffic, the assumptions.

Variant performance is a DataFrame with one row per benchmark configuration (variant × batch ×
threads), built from :class:`VariantPerf` rows (:func:`perf_frame`) or from the registry
(:func:`perf_from_registry`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from thrifty.catalog.accelerators import canonical_accelerator
from thrifty.catalog.schema import INTERRUPTION_BUCKETS
from thrifty.errors import ConfigError, PlanningError
from thrifty.targets import clouds

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.registry import Registry

VARIANT_STATUSES = ("candidate", "accepted", "rejected")
#: variant techniques that count as the unoptimized original (the naive baseline runs these)
BASELINE_TECHNIQUES = ("original", "export", "onnx_export", "onnx")
#: fidelity JSON keys read as the variant's score (first present wins; higher = closer to the original)
FIDELITY_KEYS = ("cosine_mean", "top1_agreement", "nn_agreement", "accuracy")


@dataclass(frozen=True)
class VariantPerf:
    """One measured configuration of one variant (a BenchmarkResult joined with its Variant)."""

    variant_name: str
    batch_size: int
    threads: int
    latency_ms_p50: float
    latency_ms_p95: float
    throughput_rps: float
    technique: str = "unknown"
    status: str = "candidate"
    fidelity_score: float | None = None
    peak_memory_mib: float | None = None
    load_ms: float | None = None
    bench_vcpus: float | None = None
    bench_arch: str = "amd64"
    cpu_model: str = ""
    cpu_flags: tuple[str, ...] = ()
    bench_instance_type: str = ""
    bench_accelerator: str = ""
    is_baseline: bool = False
    recorded: bool = False
    variant_id: int | None = None

    def __post_init__(self) -> None:
        if self.status not in VARIANT_STATUSES:
            raise ConfigError(
                f"variant {self.variant_name!r} has status {self.status!r}",
                hint=f"use one of {', '.join(VARIANT_STATUSES)}",
            )
        numbers: dict[str, float] = {"batch_size": self.batch_size, "threads": self.threads}
        numbers |= {"latency_ms_p95": self.latency_ms_p95, "throughput_rps": self.throughput_rps}
        bad = {name: value for name, value in numbers.items() if not value > 0}
        if bad or self.latency_ms_p50 > self.latency_ms_p95:
            raise ConfigError(
                f"variant {self.variant_name!r} has impossible benchmark numbers {bad or numbers}",
                hint="batch/threads/latency/throughput must be > 0 and p50 <= p95",
            )


PERF_COLUMNS = tuple(VariantPerf.__dataclass_fields__)


def perf_frame(rows: Iterable[VariantPerf]) -> pd.DataFrame:
    """VariantPerf rows → the planner's variant-performance DataFrame."""
    import pandas as pd

    records = [asdict(row) | {"cpu_flags": " ".join(row.cpu_flags)} for row in rows]
    frame = pd.DataFrame(records, columns=list(PERF_COLUMNS))
    if frame.empty:
        raise PlanningError(
            "no benchmark results to plan with",
            hint="run the benchmarks first (`thrifty optimize` / the deploy-model flow)",
        )
    for column in ("fidelity_score", "peak_memory_mib", "load_ms", "bench_vcpus"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["bench_accelerator"] = frame["bench_accelerator"].map(canonical_accelerator)
    return frame


@dataclass(frozen=True)
class Slo:
    """What a plan must meet; every filter is data, checked in one place (planner.rank).

    ``accelerator``: only offers with this accelerator (any spelling, made canonical: ``t4`` →
    ``T4``); ``"cpu"`` (stored as ``""``) means CPU-only offers; None means no requirement.
    """

    latency_ms_p95: float
    min_fidelity: float | None = None
    accepted_only: bool = False
    max_interruption_bucket: str | None = None
    providers: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    spot_ok: bool = False
    serverless_ok: bool = True
    accelerator: str | None = None
    #: serverless instances kept warm (provisioned concurrency / min instances), priced in the plan
    warm_floor: int = 0

    def __post_init__(self) -> None:
        if self.accelerator is not None:
            object.__setattr__(self, "accelerator", canonical_accelerator(self.accelerator))
        if not self.latency_ms_p95 > 0:
            raise ConfigError(f"p95 target {self.latency_ms_p95} ms", hint="pass a positive --p95-ms")
        if self.warm_floor < 0:
            raise ConfigError(
                f"warm floor {self.warm_floor}", hint="pass 0 (scale to zero) or more instances"
            )
        bucket = self.max_interruption_bucket
        if bucket is not None and bucket not in INTERRUPTION_BUCKETS:
            raise ConfigError(f"interruption bucket {bucket!r}", hint=f"use one of {INTERRUPTION_BUCKETS}")
        valid = clouds()
        unknown = sorted(set(self.providers or ()) - set(valid))
        if unknown:
            raise ConfigError(f"unknown provider(s) {unknown}", hint=f"choose from {', '.join(valid)}")


@dataclass(frozen=True)
class Traffic:
    """Target traffic: ``rps`` while active; ``active_fraction`` of the month has traffic (bursty)."""

    rps: float
    active_fraction: float = 1.0
    scale_to_zero: bool = False

    def __post_init__(self) -> None:
        if not self.rps > 0 or not 0 < self.active_fraction <= 1:
            raise ConfigError(
                f"traffic rps={self.rps}, active_fraction={self.active_fraction}",
                hint="rps must be > 0 and active_fraction in (0, 1]",
            )


#: per-family speed of one vCPU relative to the benchmark machine's (1.0 when not listed); an
#: assumption until a benchmark on that family replaces it
DEFAULT_FAMILY_FACTORS = {"a1": 0.5}  # AWS Graviton1 (Cortex-A72): about half a current vCPU


def _default_interruptions() -> dict[str, float]:
    return {"<5%": 0.025, "5-10%": 0.075, "10-15%": 0.125, "15-20%": 0.175, ">20%": 0.30, "": 0.20}


@dataclass(frozen=True)
class Assumptions:
    """The capacity and risk model's stated assumptions; every plan records them."""

    max_utilization: float = 0.7
    memory_reserve_mib: float = 512.0
    serverless_overhead_mib: float = 256.0
    #: rehearsed cold start, container start → first answer (bench/serverless.py, MiniLM int8 p95)
    serverless_cold_start_ms: float = 1500.0
    #: how long a platform keeps an idle instance warm (Lambda ~5–15 min, Cloud Run up to 15 min)
    serverless_keep_warm_s: float = 300.0
    #: mean length of one active period of bursty traffic (each starts cold above the warm floor)
    serverless_active_period_s: float = 600.0
    #: a warm-floor instance's price as a share of the active GB-second price: Lambda provisioned
    #: concurrency $0.0000041667 vs $0.0000166667; Cloud Run / Container Apps idle instances
    warm_floor_price_fraction: Mapping[str, float] = field(
        default_factory=lambda: {"aws": 0.25, "gcp": 0.26, "azure": 0.30}
    )
    default_peak_memory_mib: float = 1024.0
    arm64_factor: float = 0.8
    family_factors: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FAMILY_FACTORS))
    hours_per_month: float = 730.0
    min_replicas: int = 1
    rewarm_s: float = 180.0
    usd_per_lost_request: float = 0.001
    on_demand_floor_fraction: float = 0.5
    interruptions_per_instance_month: Mapping[str, float] = field(default_factory=_default_interruptions)

    def notes(self) -> list[str]:
        """The assumptions in words, for the decision record."""
        return [
            f"a machine with V vCPUs runs floor(V / threads) copies of the benchmarked configuration, "
            f"each at the measured req/s x the family factor, loaded to at most {self.max_utilization:.0%}",
            "p95 latency on another machine = measured p95 / family factor (estimate until measured there)",
            f"family factor 1.0 for x86 unless listed {dict(self.family_factors)}; "
            f"arm64 offers x{self.arm64_factor} when benchmarked on x86",
            f"memory: copies x peak memory + {self.memory_reserve_mib:g} MiB reserve must fit; unknown peak = "
            f"{self.default_peak_memory_mib:g} MiB",
            "a variant runs on an accelerator offer only with a benchmark on that accelerator, and on a "
            "CPU-only offer only with a CPU benchmark: CPU results never stand in for a GPU, nor the reverse",
            "a GPU benchmark ran on one accelerator: a machine with N of them runs N copies (also limited "
            "by vCPUs and memory), at the measured speed (no family factor); fractional GPU shares are excluded",
            "burstable types (AWS t*, GCP e2-micro/small/medium, Azure B*) are excluded: CPU credits",
            f"serverless: one request per invocation at batch 1, billed p50 duration x memory + per-request "
            f"price; {self.serverless_overhead_mib:g} MiB runtime overhead; free tiers ignored",
            f"serverless cold starts: {self.serverless_cold_start_ms:g} ms each; a request finds no warm "
            f"instance after an idle gap over {self.serverless_keep_warm_s:g} s (Poisson arrivals, none with a "
            f"warm floor), and each active period ({self.serverless_active_period_s:g} s on average) starts "
            "the instances above the warm floor cold; at 5 % cold or more the p95 is a cold start",
            f"warm floor: instances kept warm all month at {dict(self.warm_floor_price_fraction)} of the "
            "active GB-second price (provisioned concurrency / idle min instances)",
            f"spot: interruptions per instance-month by bucket {dict(self.interruptions_per_instance_month)} "
            f"('' = unknown); each costs {self.rewarm_s:g} s of re-warm during which the machine's share of "
            f"traffic is at risk at ${self.usd_per_lost_request:g} per request, plus the replacement's hours",
            "an unknown interruption bucket (GCP/Azure spot) counts as the worst one for --max-interruption",
            f"on-demand floor option: {self.on_demand_floor_fraction:.0%} of the machines on-demand, rest spot",
            f"a month is {self.hours_per_month:g} hours",
            "zones of one region quoting the same price are evaluated once (the first zone stands for them)",
        ]


def fidelity_score(fidelity: Mapping[str, Any] | None) -> float | None:
    """The first of :data:`FIDELITY_KEYS` present in a variant's fidelity JSON."""
    for key in FIDELITY_KEYS:
        value = (fidelity or {}).get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def perf_from_registry(registry: Registry, model_name: str, version: int | None = None) -> pd.DataFrame:
    """Variant + BenchmarkResult rows of a model version → the variant-performance DataFrame."""
    model_version = registry.get_model_version(model_name, version)
    variants = {v.id: v for v in registry.list_variants(model_version.id)}
    results = registry.list_benchmark_results(list(variants))
    if not results:
        raise PlanningError(
            f"model {model_name!r} v{model_version.version} has no benchmark results",
            hint="benchmark its variants first (the deploy-model flow does this)",
        )
    rows = []
    for result in results:
        variant = variants[result.variant_id]
        hardware = result.hardware or {}
        rows.append(
            VariantPerf(
                variant_name=variant.name,
                variant_id=variant.id,
                technique=variant.technique,
                status=variant.status if variant.status in VARIANT_STATUSES else "candidate",
                fidelity_score=fidelity_score(variant.fidelity),
                batch_size=result.batch_size,
                threads=result.threads,
                latency_ms_p50=result.latency_ms_p50,
                latency_ms_p95=result.latency_ms_p95,
                throughput_rps=result.throughput_rps,
                peak_memory_mib=result.peak_memory_mib,
                load_ms=result.load_ms,
                bench_vcpus=_float_or_none(hardware.get("vcpus")),
                bench_arch="arm64"
                if str(hardware.get("machine", "")).lower() in ("aarch64", "arm64")
                else "amd64",
                cpu_model=str(hardware.get("cpu_model", "")),
                cpu_flags=tuple(str(f) for f in hardware.get("cpu_flags", []) or []),
                bench_instance_type=str(hardware.get("instance_type", "")),
                bench_accelerator=canonical_accelerator(
                    hardware.get("accelerator_name") or hardware.get("accelerator") or ""
                ),
                is_baseline=variant.parent_variant_id is None and variant.technique in BASELINE_TECHNIQUES,
            )
        )
    return perf_frame(rows)


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def recorded_minilm() -> pd.DataFrame:
    """Recorded (not measured here) MiniLM-L6 numbers: ORT fp32 ~31 ms and int8 ~17 ms at batch 1,
    seq 128, 2 threads on a 2-vCPU avx512_vnni Xeon; p95 and memory are rough estimates."""
    common: dict[str, Any] = {
        "batch_size": 1,
        "threads": 2,
        "bench_vcpus": 2.0,
        "cpu_model": "Intel Xeon (avx512_vnni), 2 vCPUs",
        "cpu_flags": ("avx512f", "avx512_vnni"),
        "recorded": True,
    }
    fp32 = VariantPerf(
        variant_name="minilm-fp32",
        technique="original",
        status="accepted",
        fidelity_score=1.0,
        latency_ms_p50=31.0,
        latency_ms_p95=36.0,
        throughput_rps=1000.0 / 31.0,
        peak_memory_mib=420.0,
        load_ms=900.0,
        is_baseline=True,
        **common,
    )
    int8 = VariantPerf(
        variant_name="minilm-int8",
        technique="quantize_dynamic",
        status="accepted",
        fidelity_score=0.992,
        latency_ms_p50=17.0,
        latency_ms_p95=20.0,
        throughput_rps=1000.0 / 17.0,
        peak_memory_mib=260.0,
        load_ms=500.0,
        **common,
    )
    return perf_frame([fp32, int8])
