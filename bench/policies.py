"""Hibernation policies on the shared Azure Functions 2019 sample: trade-off table, PNG, speed.

    .venv/bin/python bench/policies.py

Writes the ``policies`` section of BENCHMARKS.md and docs/img/policies_tradeoff.png. Also checks
that thrifty's policy, with the same defaults, stays within the memory budget and below the fixed
keep-alive curve on traces derived from the sample and from the Azure LLM inference trace.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/policies.py` finds bench._report

from rich.console import Console
from rich.markdown import Markdown

from bench._report import ROOT, machine_line, write_section
from thrifty.policies import CostAware, HybridHistogram
from thrifty.policies.simulate import (
    PolicySummary,
    below_fixed_curve,
    compare,
    plot_tradeoff,
    table_markdown,
)
from thrifty.policies.trace import Trace, dilate_llm_requests, load_trace

TRACES = ROOT.parent / "shared" / "data" / "traces"
SAMPLE = TRACES / "azure_functions_2019_sample1000"
LLM_CONV = TRACES / "azure_llm_inference_2023" / "AzureLLMInferenceTrace_conv.csv"
PNG = ROOT / "docs" / "img" / "policies_tradeoff.png"
SPEED_TARGET_S = 30.0


def derived_traces(sample: Trace) -> list[Trace]:
    traces = [
        sample.window(0, 720, "first 12 h"),
        sample.window(720, 1440, "second 12 h"),
        sample.thinned(0.1, seed=1),
    ]
    if LLM_CONV.is_file():
        traces.append(dilate_llm_requests(LLM_CONV, 200))
    traces.append(poisson_trace())
    return traces


def poisson_trace(functions: int = 200, minutes: int = 3500) -> Trace:
    """Memoryless arrivals at rates spread like the dilated LLM copies: where no policy beats fixed."""
    rng = np.random.default_rng(0)
    rates = np.logspace(np.log10(5.5 / 2000), np.log10(5.5 / 5), functions)[:, None]
    counts = rng.poisson(rates, size=(functions, minutes)).astype(np.int64)
    return Trace(counts, tuple(map(str, range(functions))), source="synthetic Poisson")


METRICS = ("cold_pct_p75", "cold_pct_mean")


def fixed_curve_at(summaries: list[PolicySummary], memory_pct: float, metric: str) -> float:
    fixed = sorted((s for s in summaries if s.policy.startswith("fixed-")), key=lambda s: s.wasted_memory_pct)
    xs = [s.wasted_memory_pct for s in fixed]
    return float(np.interp(memory_pct, xs, [getattr(s, metric) for s in fixed]))


def robustness_rows(traces: list[Trace]) -> list[str]:
    rows = [
        "| trace | policy | cold % p75 | cold % mean | wasted memory % | within budget "
        "| fixed curve at that memory (p75 / mean) | below fixed curve (p75 / mean) |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for trace in traces:
        summaries = compare(trace, [HybridHistogram(), CostAware()])
        for s in summaries[-2:]:
            budget = "yes" if s.wasted_memory_pct <= 100.0 else "**no**"
            p75 = below_fixed_curve(s, summaries, "cold_pct_p75")
            mean = below_fixed_curve(s, summaries, "cold_pct_mean")
            curve_p75, curve_mean = (fixed_curve_at(summaries, s.wasted_memory_pct, m) for m in METRICS)
            rows.append(
                f"| {trace.source} ({trace.n_functions} × {trace.minutes} min) | {s.policy} | {s.cold_pct_p75:.1f} | "
                f"{s.cold_pct_mean:.1f} | {s.wasted_memory_pct:.1f} | {budget} | {curve_p75:.1f} / {curve_mean:.1f} | "
                f"{'yes' if p75 else '**no**'} / {'yes' if mean else '**no**'} |"
            )
    return rows


def section(summaries: list[PolicySummary], elapsed_s: float, robustness: list[str]) -> str:
    png = PNG.relative_to(ROOT)
    return "\n".join(
        [
            "## Hibernation policies (bench/policies.py)",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine_line()}",
            "",
            f"Trace: `{SAMPLE.name}` (1,000 functions × 1,440 one-minute buckets, Azure Functions 2019). "
            "One instance per function; an invoked minute is cold when the instance is not loaded; "
            "wasted memory = loaded minutes without invocations, as % of the fixed 10-min keep-alive "
            "(plain, and weighted by each function's AverageAllocatedMb). Cold-start % is per function, "
            "over functions with ≥ 1 invocation (per invoked minute; per invocation beside it).",
            "",
            table_markdown(summaries),
            "",
            f"![trade-off]({png})",
            "",
            f"Simulator speed: the fixed curve (7 points) and both policies on 1,000 functions × 24 h in "
            f"**{elapsed_s:.1f} s** (target < {SPEED_TARGET_S:.0f} s).",
            "",
            "Issue baselines (this model): fixed 10 → p75 100 %, mean 46.1 %, memory 100 %; fixed 60 → "
            "55.6 %, 32.3 %, 176 % (here 176.5 %); hybrid histogram → 50.0 %, 31.5 %, 152 % (here 151.9 %). "
            "A 24-h window limits the 4-h histogram: published ATC'20 numbers used 14 days.",
            "",
            "### Same defaults on derived traces",
            "",
            *robustness,
            "",
            "Where thrifty's policy does not beat the fixed curve: memoryless traffic. The dilated LLM "
            "trace (each copy a random thinning of the real arrivals) is close to Poisson, and on a "
            "synthetic Poisson trace every function has the same benefit/cost ratio at every window "
            "length, so how a memory budget is split does not change the expected mean cold-start share; "
            "a fixed keep-alive is already optimal there and learning only adds noise (here 1–2 points of "
            "mean cold-start %). It still holds the budget on every trace.",
        ]
    )


def main() -> None:
    console = Console()
    sample = load_trace(SAMPLE)
    started = time.perf_counter()
    summaries = compare(sample, [HybridHistogram(), CostAware()])
    elapsed_s = time.perf_counter() - started
    plot_tradeoff(summaries, PNG, f"{SAMPLE.name}: fixed keep-alive curve vs learned policies")
    robustness = robustness_rows(derived_traces(sample))
    markdown = section(summaries, elapsed_s, robustness)
    console.print(Markdown(markdown))
    write_section("policies", markdown)
    console.print(f"wrote the policies section of BENCHMARKS.md and {PNG}")


if __name__ == "__main__":
    main()
