"""Planner benchmark: time and memory to rank the whole price snapshot for 5 variants, and the worked
example (MiniLM int8 at 20 req/s, p95 ≤ 50 ms: cheapest offer per cloud vs the naive baseline).

Run: ``.venv/bin/python bench/planner.py`` (reads ../shared/data/pricing; writes BENCHMARKS.md).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/planner.py` finds bench._report

import pandas as pd
from rich.console import Console
from rich.table import Table

from bench._report import machine_line, write_section
from thrifty.catalog.serverless import serverless_table
from thrifty.catalog.snapshot import read_snapshot
from thrifty.planner.decision import naive_baseline, plan
from thrifty.planner.rank import rank
from thrifty.planner.types import Slo, Traffic, VariantPerf, perf_frame, recorded_minilm

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT.parent / "shared" / "data" / "pricing"
RUNS = 15
console = Console()


def five_variants() -> pd.DataFrame:
    """The recorded MiniLM fp32/int8 rows plus three synthetic variants (timing only), 3 configs each."""
    recorded = recorded_minilm()
    rows: list[VariantPerf] = []
    scale = {"minilm-fp32": 1.0, "minilm-int8": 0.55, "minilm-graphopt": 0.85, "minilm-int8-static": 0.5}
    scale["minilm-pruned"] = 0.7
    for name, factor in scale.items():
        base = recorded.iloc[0 if name == "minilm-fp32" else 1]
        for threads, batch in ((1, 1), (2, 1), (4, 8)):
            latency = 31.0 * factor * (2 / threads) ** 0.8 * (batch**0.6)
            rows.append(
                VariantPerf(
                    variant_name=name,
                    technique="original" if name == "minilm-fp32" else "synthetic",
                    status="accepted",
                    fidelity_score=float(base["fidelity_score"]),
                    batch_size=batch,
                    threads=threads,
                    latency_ms_p50=latency,
                    latency_ms_p95=latency * 1.15,
                    throughput_rps=1000.0 * batch / latency,
                    peak_memory_mib=float(base["peak_memory_mib"]),
                    is_baseline=name == "minilm-fp32",
                )
            )
    return perf_frame(rows)


def time_ranking(catalog: pd.DataFrame, variants: pd.DataFrame) -> dict[str, float]:
    slo, traffic = Slo(50, spot_ok=True), Traffic(rps=20)
    rank(variants, catalog, slo, traffic)  # warm-up
    rank_ms = [_ms(lambda: rank(variants, catalog, slo, traffic)) for _ in range(RUNS)]
    plan_ms = [_ms(lambda: plan(variants, catalog, slo, traffic)) for _ in range(RUNS)]
    tracemalloc.start()
    ranking = rank(variants, catalog, slo, traffic)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "pairs": float(len(ranking.pairs)),
        "rank_ms_median": statistics.median(rank_ms),
        "rank_ms_max": max(rank_ms),
        "plan_ms_median": statistics.median(plan_ms),
        "peak_mib": peak_bytes / 2**20,
    }


def _ms(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def worked_example(catalog: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Cheapest int8 offer per cloud (on-demand and spot) at 20 req/s, p95 ≤ 50 ms."""
    perf, origin = minilm_perf()
    usable = perf[perf["status"] != "rejected"]  # the guardrail's verdict: a rejected int8 is never planned
    names = sorted(set(usable["variant_name"]))
    pick = next((n for n in names if "int8-dynamic" in n), next(n for n in names if "int8" in n))
    int8 = perf[perf["variant_name"] == pick]
    traffic = Traffic(rps=20)
    baseline = naive_baseline(perf, catalog, traffic)
    rows = []
    for provider in ("aws", "gcp", "azure"):
        for spot_ok in (False, True):
            decision = plan(
                int8, catalog, Slo(50, providers=(provider,), spot_ok=spot_ok), traffic, with_baseline=False
            )
            rows.append(decision.chosen | {"spot_ok": spot_ok})
    return rows, baseline, origin


def minilm_perf() -> tuple[pd.DataFrame, str]:
    """Real benchmark results of a MiniLM model from the registry, else the recorded numbers."""
    try:
        from thrifty import runtime
        from thrifty.planner.types import perf_from_registry

        registry = runtime.registry()
        for model in registry.list_models():
            if "minilm" in model.name.lower():
                perf = perf_from_registry(registry, model.name)
                if perf["variant_name"].str.contains("int8").any() and perf["is_baseline"].any():
                    return perf, f"registry benchmark results of {model.name!r}"
    except Exception as exc:  # a missing/empty registry is the normal case here
        console.print(f"[dim]no registry results ({exc.__class__.__name__}); using recorded numbers[/]")
    return recorded_minilm(), (
        "RECORDED numbers, not measured here: ORT fp32 ~31 ms and int8 ~17 ms at batch 1 / seq 128 on a "
        "2-vCPU avx512_vnni Xeon (p95 36 / 20 ms and peak memory 420 / 260 MiB are estimates)"
    )


def main() -> int:
    if not SNAPSHOT.is_dir():
        console.print(f"[red]{SNAPSHOT} is missing: the planner bench reads the shared price snapshot[/]")
        return 1
    start = time.perf_counter()
    catalog = pd.concat([read_snapshot(SNAPSHOT), serverless_table()], ignore_index=True)
    load_s = time.perf_counter() - start
    timing = time_ranking(catalog, five_variants())
    rows, baseline, origin = worked_example(catalog)
    markdown = render(catalog, load_s, timing, rows, baseline, origin)
    write_section("planner", markdown)
    return 0 if timing["rank_ms_median"] < 200 else 2


def render(
    catalog: pd.DataFrame,
    load_s: float,
    timing: dict[str, float],
    rows: list[dict[str, Any]],
    baseline: dict[str, Any],
    origin: str,
) -> str:
    """Print both tables and return the BENCHMARKS.md section."""
    header = [
        "## Planner (bench/planner.py)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_line()} "
        f"(load average {os.getloadavg()[0]:.1f}: the machine is shared, so timings are noisy).",
        f"Snapshot: ../shared/data/pricing + serverless rows = {len(catalog):,} price rows (read in {load_s:.2f} s).",
        "",
    ]
    return "\n".join(header + _timing_section(catalog, timing) + _example_section(rows, baseline, origin))


TIMING_HEADERS = ("price rows", "pairs", "rank median ms", "rank max ms", "plan() median ms", "peak MiB")
EXAMPLE_HEADERS = (
    "cloud",
    "spot ok",
    "offer",
    "region",
    "$/h",
    "machines",
    "p95 est ms",
    "$/month",
    "$/M req",
)
EXAMPLE_HEADERS += ("vs baseline",)


def _timing_section(catalog: pd.DataFrame, timing: dict[str, float]) -> list[str]:
    values = (
        f"{len(catalog):,}",
        f"{timing['pairs']:,.0f}",
        f"{timing['rank_ms_median']:.1f}",
        f"{timing['rank_ms_max']:.1f}",
        f"{timing['plan_ms_median']:.1f}",
        f"{timing['peak_mib']:.1f}",
    )
    table = Table(title="rank the full snapshot x 5 variants (3 configs each)")
    for column in TIMING_HEADERS:
        table.add_column(column, justify="right")
    table.add_row(*values)
    console.print(table)
    met = "met" if timing["rank_ms_median"] < 200 else "NOT met"
    return [
        "| " + " | ".join(TIMING_HEADERS) + " |",
        "|" + "---:|" * len(TIMING_HEADERS),
        "| " + " | ".join(values) + " |",
        "",
        f"Target: rank < 200 ms ({met}). 5 variants: recorded MiniLM fp32/int8 + 3 synthetic (timing only); "
        "`plan()` adds the decision record and the baseline; peak MiB = tracemalloc peak of one rank().",
        "",
    ]


def _example_section(rows: list[dict[str, Any]], baseline: dict[str, Any], origin: str) -> list[str]:
    table = Table(title="MiniLM int8, 20 req/s, p95 ≤ 50 ms: cheapest offer per cloud")
    for column in EXAMPLE_HEADERS:
        table.add_column(column)
    lines = []
    for row in rows:
        cells = _example_cells(row, baseline)
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    base_line = (
        f"naive baseline: {baseline['variant']} on on-demand m5.xlarge us-east-1 = "
        f"${baseline['usd_per_month']:,.2f}/month, ${baseline['usd_per_million_requests']:.3f} per million requests"
    )
    console.print(base_line)
    console.print(f"variant numbers: {origin}")
    return [
        "### Worked example: MiniLM int8 at 20 req/s, p95 ≤ 50 ms",
        "",
        "| " + " | ".join(EXAMPLE_HEADERS) + " |",
        "|" + "---|" * len(EXAMPLE_HEADERS),
        *lines,
        "",
        base_line + ".",
        f"Variant numbers: {origin}.",
        "p95 on other machines is an estimate (measured p95 / family factor; arm64 x0.8, AWS a1 x0.5).",
    ]


def _example_cells(row: dict[str, Any], baseline: dict[str, Any]) -> tuple[str, ...]:
    ratio = baseline["usd_per_million_requests"] / row["usd_per_million_requests"]
    price = "serverless" if row["option"] == "serverless" else f"{row['usd_per_hour']:.4f}"
    machines = "-" if row["machines"] is None else f"{row['machines']:g}"
    return (
        row["provider"],
        "yes" if row["spot_ok"] else "no",
        f"{row['instance_type']} ({row['option']}{', derived' if row['derived'] else ''})",
        row["region"],
        price,
        machines,
        f"{row['latency_ms_p95_est']:.1f}",
        f"{row['usd_per_month']:,.2f}",
        f"{row['usd_per_million_requests']:.3f}",
        f"{ratio:.1f}x cheaper",
    )


if __name__ == "__main__":
    sys.exit(main())
