"""Flow ``optimize-model``: make a model's variants, then benchmark and judge every one of them.

Export and graph optimization run first (the others start from the optimized graph); the
remaining techniques are mapped in parallel, then every variant is timed (one fresh process at a
time unless ``parallel_benchmarks``, so timings do not measure each other) and the fidelity check is
mapped over all variants. The result is a Prefect table artifact: variant, size, latency, req/s, load
time, fidelity and whether it was accepted.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel, Field

from tasks.benchmark import measure_fidelity, run_benchmark
from tasks.optimize import (
    VariantRef,
    convert_fp16,
    distill_model,
    export_onnx,
    optimize_graph,
    prune_model,
    quantize_model,
)
from thrifty import runtime
from thrifty.optimize import pipeline
from thrifty.optimize.user_inputs import UserInputs

MAPPED_QUANT = ("dynamic_int8", "blockwise_int8", "smooth_int8", "static_int8", "search")


class OptimizeParams(BaseModel):
    model: str = Field(..., description="Registered model name.")
    version: int | None = Field(None, description="Model version; default: the newest.")
    techniques: list[str] = Field(
        default=list(pipeline.DEFAULT_TECHNIQUES),
        description="Techniques to run: export, graph, dynamic_int8, blockwise_int8, smooth_int8, static_int8, fp16, "
        "search; prune and distill when module and data are given.",
    )
    module: str | None = Field(
        None,
        description="The model's code for prune / distill / state dicts: FILE.py:FUNCTION returning the "
        "nn.Module (registered weights are loaded into it).",
    )
    data: str | None = Field(
        None, description="Training data for prune / distill: an .npz with 'inputs' (and 'labels')."
    )
    target: str = Field("cpu", description="Preset: cpu (picked from this CPU's flags) or gpu.")
    min_cosine: float = Field(0.99, description="Tolerance: minimum mean cosine to the original.")
    min_agreement: float = Field(0.95, description="Tolerance: minimum nearest-neighbour / top-1 agreement.")
    batch_sizes: list[int] = Field(default=[1, 8], description="Benchmark batch sizes.")
    threads: list[int] = Field(default=[1], description="Benchmark thread counts.")
    seq_lens: list[int | None] = Field(
        default=[128], description="Sequence lengths for text models (null = natural)."
    )
    runs: int = Field(30, description="Timed runs per benchmark case.")
    parallel_benchmarks: bool = Field(
        False,
        description="Map the timing runs concurrently. Off by default: fresh timing processes running "
        "at once on a small machine measure each other, not the variants.",
    )


def _table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def num(value: Any, digits: int) -> Any:
        return None if value is None else round(float(value), digits)

    return [
        {
            "variant": r["variant"],
            "size MB": num(r["size_mb"], 1),
            "p50 ms": num(r["latency_ms_p50"], 2),
            "p95 ms": num(r["latency_ms_p95"], 2),
            "req/s": num(r["throughput_rps"], 1),
            "load ms": num(r["load_ms"], 0),
            "fidelity": ", ".join(f"{k} {v:.3f}" for k, v in r["fidelity"].items()),
            "accepted?": "yes" if r["status"] == "accepted" else f"no: {r['rejection_reason']}",
        }
        for r in rows
    ]


@flow(name="optimize-model", log_prints=True)
def optimize_model(params: OptimizeParams) -> list[dict[str, Any]]:
    """Variants of one model version, benchmarked and judged; returns the summary rows."""
    version = runtime.registry().get_model_version(params.model, params.version)
    techniques = pipeline.applicable_techniques(params.techniques, version.format)
    pipeline.check_user_inputs(version.format, techniques, UserInputs(params.module, params.data))
    tolerance = {"min_cosine": params.min_cosine, "min_agreement": params.min_agreement}
    refs: list[VariantRef] = [export_onnx(version.id, params.target, params.module, params.data)]
    if "graph" in techniques:
        refs.append(optimize_graph(version.id, refs[0], params.target))
        quant = [t for t in MAPPED_QUANT if t in techniques]
        futures = quantize_model.map(
            version.id, quant, unmapped(refs[1]), unmapped(params.target), unmapped(tolerance)
        )
        if "fp16" in techniques:
            refs.append(convert_fp16(version.id, refs[1], params.target))
        refs += futures.result()
    if "prune" in techniques:
        refs.append(prune_model(version.id, refs[0], params.module, params.data, params.target))
    if "distill" in techniques:
        refs.append(distill_model(version.id, refs[0], params.module, params.data, params.target))
    spec = {
        "batch_sizes": tuple(params.batch_sizes),
        "threads": tuple(params.threads),
        "seq_lens": tuple(params.seq_lens),
        "runs": params.runs,
    }
    ids = [r.variant_id for r in refs]
    if params.parallel_benchmarks:
        run_benchmark.map(ids, unmapped(spec)).result()
    else:
        for variant_id in ids:
            run_benchmark(variant_id, spec)
    measure_fidelity.map(ids, unmapped(tolerance)).result()
    rows: list[dict[str, Any]] = pipeline.summarize(runtime.registry(), version)
    create_table_artifact(
        key=f"optimize-{params.model.lower().replace('_', '-')}",
        table=_table(rows),
        description=f"{params.model} v{version.version}: variants vs the original",
    )
    accepted = sum(r["status"] == "accepted" for r in rows)
    print(f"{params.model} v{version.version}: {len(rows)} variants, {accepted} accepted")
    return rows
