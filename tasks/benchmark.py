"""Prefect tasks for the benchmark stage: timing (fresh process) and fidelity (the guardrail)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from thrifty import runtime
from thrifty.bench.harness import BenchSpec
from thrifty.optimize import pipeline
from thrifty.optimize.config import Tolerance
from thrifty.settings import get_settings


def _context(variant_id: int) -> tuple[Any, Any, Any, Any]:
    registry, store = runtime.registry(), runtime.store()
    variant = registry.get_variant(variant_id)
    version = registry.get_model_version_by_id(variant.model_version_id)
    _, evals = pipeline.source_and_evals(version, store, pipeline.work_dir_for(version, get_settings().home))
    return registry, store, variant, evals


@task(name="run-benchmark", cache_policy=NO_CACHE)
def run_benchmark(variant_id: int, spec: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Latency p50/p95/p99, throughput, memory, load time and size of one variant; rows stored."""
    registry, store, variant, evals = _context(variant_id)
    rows = pipeline.benchmark_variant(registry, store, variant, BenchSpec(**(spec or {})), evals)
    return [
        {
            "batch_size": r.batch_size,
            "threads": r.threads,
            "seq_len": r.seq_len,
            "latency_ms_p50": r.latency_ms_p50,
            "latency_ms_p95": r.latency_ms_p95,
            "throughput_rps": r.throughput_rps,
        }
        for r in rows
    ]


@task(name="measure-fidelity", cache_policy=NO_CACHE)
def measure_fidelity(variant_id: int, tolerance: dict[str, float] | None = None) -> dict[str, Any]:
    """Fidelity vs the original on the eval set; marks the variant accepted or rejected."""
    registry, store, variant, evals = _context(variant_id)
    judged = pipeline.judge_variant(registry, store, variant, evals, Tolerance(**(tolerance or {})))
    return {
        "variant_id": judged.id,
        "status": judged.status,
        "reason": judged.rejection_reason,
        **judged.fidelity,
    }
