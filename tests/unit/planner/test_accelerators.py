"""Accelerator placement: a variant goes on a GPU only with a benchmark on that GPU, on a CPU-only
machine only with a CPU benchmark. Tiny hand-made tables; each case says why the expected row wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from thrifty.catalog.schema import validate
from thrifty.cli import app
from thrifty.errors import PlanningError, SloUnreachableError
from thrifty.planner.decision import plan
from thrifty.planner.explain import explain_text
from thrifty.planner.rank import rank
from thrifty.planner.types import Assumptions, Slo, Traffic, VariantPerf, perf_frame

HOURS = 730.0


def offer(
    instance_type: str, vcpus: float, memory_gib: float, usd_per_hour: float, **extra: Any
) -> dict[str, Any]:
    row = {
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": instance_type,
        "vcpus": vcpus,
        "memory_gib": memory_gib,
        "price_model": "on_demand",
        "usd_per_hour": usd_per_hour,
        "observed_at": "2026-07-20T00:00:00Z",
        "source": "hand-made test row",
    }
    return row | extra


def gpu(instance_type: str, name: str, count: float, usd_per_hour: float, **extra: Any) -> dict[str, Any]:
    return offer(instance_type, 4, 16, usd_per_hour, accelerator_name=name, accelerator_count=count) | extra


def table(*rows: dict[str, Any]) -> pd.DataFrame:
    return validate(pd.DataFrame(list(rows)))


def variant(name: str, accelerator: str = "", **extra: Any) -> VariantPerf:
    fields: dict[str, Any] = {
        "variant_name": name,
        "batch_size": 1,
        "threads": 1,
        "latency_ms_p50": 18.0,
        "latency_ms_p95": 20.0,
        "throughput_rps": 50.0,
        "status": "accepted",
        "fidelity_score": 0.99,
        "peak_memory_mib": 300.0,
        "bench_accelerator": accelerator,
    }
    return VariantPerf(**(fields | extra))


#: a CPU machine, the same-price T4 machine on AWS (lower-case label) and GCP, an L4 one
CATALOG = (
    offer("c6i.xlarge", 4, 8, 0.17),
    gpu("g4dn.xlarge", "t4", 1, 0.526),
    gpu("n1-highmem-4+T4x1", "T4", 1, 0.58661, provider="gcp", region="us-central1", zone="us-central1-a"),
    gpu("g6.xlarge", "l4", 1, 0.8048),
)


def _pairs(decision: Any) -> set[tuple[str, str]]:
    return {(c["variant"], c["accelerator_name"]) for c in decision.candidates}


def test_cpu_benchmarks_never_land_on_a_gpu() -> None:
    decision = plan(
        perf_frame([variant("int8")]), table(*CATALOG), Slo(50), Traffic(rps=20), with_baseline=False
    )
    assert _pairs(decision) == {("int8", "")}
    reasons = {e["reason"]: e for e in decision.excluded}
    lost = reasons[
        "accelerator offer without a benchmark on that accelerator (CPU results never stand in for it)"
    ]
    assert lost["count"] == 3 and lost["closest"]["accelerator_name"] in {"T4", "L4"}
    assert decision.accelerators == {
        "required": None,
        "benchmarked_on": ["cpu"],
        "offers_without_benchmark": {"L4": 1, "T4": 2},
    }


def test_each_variant_runs_only_where_it_was_measured() -> None:
    # "fast" ran on a T4 (nvidia-smi spelling), "int8" on a CPU: the T4 numbers must not reach the
    # CPU machine, nor the CPU numbers the T4/L4 machines; AWS's "t4" row is the same T4
    variants = perf_frame(
        [
            variant("fast", "Tesla T4", throughput_rps=900.0, latency_ms_p50=3.0, latency_ms_p95=4.0),
            variant("int8"),
        ]
    )
    decision = plan(variants, table(*CATALOG), Slo(50), Traffic(rps=20), with_baseline=False)
    assert _pairs(decision) == {("fast", "T4"), ("int8", "")}
    t4_types = {c["instance_type"] for c in decision.candidates if c["variant"] == "fast"}
    assert t4_types == {"g4dn.xlarge", "n1-highmem-4+T4x1"}  # both clouds' T4s, the L4 left out
    ranking = rank(variants, table(*CATALOG), Slo(50), Traffic(rps=20))
    reasons = {int(code) for code in ranking.pairs["code"].unique()}
    assert {9, 10} <= reasons  # CPU result on a GPU offer; GPU result on the CPU offer


def test_required_accelerator_picks_the_cheapest_t4_across_clouds() -> None:
    # the CPU machine is cheapest, but the SLO asks for a T4: g4dn.xlarge ($0.526) beats GCP's $0.587
    variants = perf_frame([variant("fast", "T4", throughput_rps=900.0), variant("int8")])
    decision = plan(
        variants, table(*CATALOG), Slo(50, accelerator="t4"), Traffic(rps=20), with_baseline=False
    )
    assert decision.slo["accelerator"] == "T4"
    assert (decision.chosen["instance_type"], decision.chosen["variant"]) == ("g4dn.xlarge", "fast")
    assert decision.chosen["usd_per_month"] == pytest.approx(0.526 * HOURS)
    assert "not the required accelerator" in [e["reason"] for e in decision.excluded]
    cpu_only = plan(
        variants, table(*CATALOG), Slo(50, accelerator="cpu"), Traffic(rps=20), with_baseline=False
    )
    assert _pairs(cpu_only) == {("int8", "")}


def test_required_accelerator_without_a_benchmark_says_where_they_ran() -> None:
    with pytest.raises(
        PlanningError, match=r"no variant was benchmarked on T4 \(benchmarks ran on: cpu\)"
    ) as info:
        plan(perf_frame([variant("int8")]), table(*CATALOG), Slo(50, accelerator="T4"), Traffic(rps=20))
    assert info.value.hint and "--accelerator" in info.value.hint


def test_gpu_copies_follow_the_gpu_count_not_the_vcpus() -> None:
    # 48 vCPUs / 1 thread would be 48 copies; the benchmark ran on one T4, so 4 T4s = 4 copies:
    # 4 x 100 req/s x 0.7 = 280 req/s per machine; 1000 req/s → 4 machines
    variants = perf_frame([variant("fast", "T4", throughput_rps=100.0)])
    catalog = table(offer("g4dn.12xlarge", 48, 192, 3.912, accelerator_name="t4", accelerator_count=4))
    chosen = plan(variants, catalog, Slo(50), Traffic(rps=1000), with_baseline=False).chosen
    assert (chosen["copies_per_machine"], chosen["machines"]) == (4, 4)
    assert chosen["usd_per_month"] == pytest.approx(4 * 3.912 * HOURS)


def test_gpu_numbers_are_not_scaled_by_a_cpu_family_factor() -> None:
    # a family factor 0.5 on g4dn would double a CPU benchmark's p95 (20 → 40 ms); not a GPU one's
    variants = perf_frame([variant("fast", "T4")])
    decision = plan(
        variants,
        table(gpu("g4dn.xlarge", "T4", 1, 0.526)),
        Slo(30),
        Traffic(rps=20),
        assumptions=Assumptions(family_factors={"g4dn": 0.5}),
        with_baseline=False,
    )
    assert decision.chosen["latency_ms_p95_est"] == pytest.approx(20.0)
    assert decision.chosen["family_factor"] == 1.0


def test_a_fractional_gpu_share_is_not_a_whole_one() -> None:
    # Azure NV6ads_A10_v5 is 1/6 of an A10: a benchmark on a whole A10 says nothing about it
    variants = perf_frame([variant("fast", "A10")])
    share = gpu("Standard_NV6ads_A10_v5", "A10", 0.167, 0.45, provider="azure", region="eastus")
    with pytest.raises(SloUnreachableError, match="fractional accelerator share"):
        plan(variants, table(share), Slo(50), Traffic(rps=20))


def test_explain_names_the_accelerators() -> None:
    variants = perf_frame([variant("fast", "T4", throughput_rps=900.0), variant("int8")])
    decision = plan(
        variants, table(*CATALOG), Slo(50, accelerator="T4"), Traffic(rps=20), with_baseline=False
    )
    text = explain_text(decision.to_dict())
    assert "accelerator T4" in text and "p95 20.0 ms on T4" in text
    assert (
        "benchmarks ran on: T4, cpu; accelerator offers left out for want of a benchmark on them: L4 (1"
        in text
    )


def test_cli_requires_an_accelerator_without_a_traceback(thrifty_home: Path) -> None:
    runner = CliRunner()
    args = ["plan", "minilm", "--p95-ms", "50", "--rps", "20", "--recorded", "--accelerator", "t4"]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, PlanningError)  # the CLI's error handler prints it, no traceback
    assert "benchmarks ran on: cpu" in result.exception.message


def test_registry_results_carry_the_harness_accelerator_record(registry: Any) -> None:
    from thrifty.planner.types import perf_from_registry
    from thrifty.registry.models import BenchmarkResult

    artifact = registry.upsert_artifact("c" * 64, 100, "file:///model")
    version, _ = registry.add_model_version(
        "tiny", sha256="c" * 64, artifact=artifact, format="onnx", size_bytes=100, source_path="/m"
    )
    variant_row, _ = registry.add_variant(version.id, "tiny-fp32", technique="original", artifact=artifact)
    cpu = {"vcpus": 2, "cpu_model": "Xeon", "accelerator": "cpu", "accelerator_name": ""}
    t4 = {"vcpus": 4, "cpu_model": "Xeon", "accelerator": "Tesla T4", "accelerator_name": "T4"}
    raw_only = {
        "vcpus": 4,
        "cpu_model": "Xeon",
        "accelerator": "NVIDIA A10G",
    }  # a record with the raw name only
    registry.add_benchmark_results(
        [
            BenchmarkResult(
                variant_id=variant_row.id,
                batch_size=batch,
                threads=1,
                latency_ms_p50=5.0,
                latency_ms_p95=6.0,
                latency_ms_p99=7.0,
                throughput_rps=200.0,
                hardware=hardware,
            )
            for batch, hardware in ((1, cpu), (2, t4), (4, raw_only))
        ]
    )
    perf = perf_from_registry(registry, "tiny").set_index("batch_size")
    assert list(perf.loc[[1, 2, 4], "bench_accelerator"]) == ["", "T4", "A10G"]
