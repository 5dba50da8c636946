"""Variant performance built from registry rows (Variant + BenchmarkResult), planned and stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from thrifty.catalog.store import save_prices
from thrifty.errors import PlanningError
from thrifty.planner.service import plan_model
from thrifty.planner.types import Slo, Traffic, perf_from_registry
from thrifty.registry.models import BenchmarkResult
from thrifty.settings import Settings

HARDWARE = {"vcpus": 2, "cpu_model": "Intel Xeon (test)", "cpu_flags": ["avx512_vnni"], "machine": "x86_64"}


def _model_with_variants(registry: Any) -> int:
    artifact = registry.upsert_artifact("a" * 64, 100, "file:///model")
    version, _ = registry.add_model_version(
        "tiny", sha256="a" * 64, artifact=artifact, format="onnx", size_bytes=100, source_path="/m"
    )
    specs = [
        ("tiny-fp32", "original", "accepted", {"cosine_mean": 1.0}, 30.0, 33.0),
        ("tiny-int8", "quantize_dynamic", "accepted", {"cosine_mean": 0.995, "cosine_min": 0.98}, 15.0, 18.0),
        ("tiny-pruned", "prune", "rejected", {"cosine_mean": 0.80}, 5.0, 6.0),
    ]
    results = []
    for name, technique, status, fidelity, p50, p95 in specs:
        variant, _ = registry.add_variant(
            version.id, name, technique=technique, artifact=artifact, status=status, fidelity=fidelity
        )
        results.append(
            BenchmarkResult(
                variant_id=variant.id,
                batch_size=1,
                threads=2,
                latency_ms_p50=p50,
                latency_ms_p95=p95,
                latency_ms_p99=p95 * 1.2,
                throughput_rps=1000.0 / p50,
                peak_memory_mib=300.0,
                load_ms=200.0,
                hardware=HARDWARE,
            )
        )
    registry.add_benchmark_results(results)
    return int(version.id)


def test_perf_from_registry_reads_status_fidelity_and_hardware(registry: Any) -> None:
    _model_with_variants(registry)
    perf = perf_from_registry(registry, "tiny").set_index("variant_name")
    assert perf.loc["tiny-int8", "fidelity_score"] == pytest.approx(0.995)  # cosine_mean
    assert perf.loc["tiny-pruned", "status"] == "rejected"
    assert bool(perf.loc["tiny-fp32", "is_baseline"]) and not bool(perf.loc["tiny-int8", "is_baseline"])
    assert perf.loc["tiny-int8", "bench_vcpus"] == 2.0 and perf.loc["tiny-int8", "cpu_flags"] == "avx512_vnni"


def test_plan_model_uses_registry_results_and_stores_the_record(registry: Any, tmp_path: Path) -> None:
    version_id = _model_with_variants(registry)
    rows = [
        {"provider": "aws", "region": "us-east-1", "instance_type": t, "vcpus": v, "memory_gib": m,
         "price_model": "on_demand", "usd_per_hour": p, "observed_at": "2026-05-01T00:00:00Z", "source": "test"}
        for t, v, m, p in (("m5.xlarge", 4, 16, 0.192), ("c.large", 2, 4, 0.085))
    ]  # fmt: skip
    save_prices(registry, pd.DataFrame(rows))
    result = plan_model(
        registry, Settings(home=tmp_path), "tiny", Slo(50, min_fidelity=0.99), Traffic(rps=40)
    )
    chosen = result.decision.chosen
    # int8: 66.7 req/s x 0.7 = 46.7 ≥ 40 on one c.large; fp32 needs 2; pruned is rejected
    assert (chosen["variant"], chosen["instance_type"], chosen["machines"]) == ("tiny-int8", "c.large", 1.0)
    stored = registry.get_plan(result.plan_id)
    assert stored.model_version_id == version_id
    assert stored.usd_per_month == pytest.approx(0.085 * 730)
    assert stored.record["baseline"]["variant"] == "tiny-fp32"
    assert "variant rejected" in [e["reason"] for e in stored.record["excluded"]]


def test_no_benchmarks_is_a_clear_error(registry: Any) -> None:
    artifact = registry.upsert_artifact("b" * 64, 1, "file:///m")
    registry.add_model_version(
        "bare", sha256="b" * 64, artifact=artifact, format="onnx", size_bytes=1, source_path="/m"
    )
    with pytest.raises(PlanningError, match="no benchmark results"):
        perf_from_registry(registry, "bare")
