"""CLI: `thrifty optimize NAME`, `thrifty bench NAME`, `thrifty variants NAME` (rich tables).

Heavy imports live inside the command functions so `thrifty --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from thrifty.render import Col

if TYPE_CHECKING:
    from thrifty.bench.harness import BenchSpec
    from thrifty.optimize.config import Tolerance
    from thrifty.read import VariantView

TECHNIQUES_HELP = (
    "comma-separated: export,graph,dynamic_int8,blockwise_int8,static_int8,fp16,search; "
    "prune,distill when --module and --data are given"
)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _tolerance(min_cosine: float, min_agreement: float) -> Tolerance:
    from thrifty.optimize.config import Tolerance

    return Tolerance(min_cosine=min_cosine, min_agreement=min_agreement)


def _spec(batch_sizes: str, threads: str, seq_lens: str, runs: int) -> BenchSpec:
    from thrifty.bench.harness import BenchSpec
    from thrifty.errors import ConfigError

    try:
        seqs = tuple(None if s == "natural" else int(s) for s in _split(seq_lens))
        return BenchSpec(
            batch_sizes=tuple(int(b) for b in _split(batch_sizes)),
            threads=tuple(int(t) for t in _split(threads)),
            seq_lens=seqs,
            runs=runs,
        )
    except ValueError as exc:
        raise ConfigError(
            f"bad benchmark option ({exc})",
            hint="e.g. --batch-sizes 1,32 --threads 1,2 --seq-lens 128,natural",
        ) from exc


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def _fidelity_text(fidelity: dict[str, float]) -> str:
    short = {
        "cosine_mean": "cos",
        "nn_agreement": "NN",
        "top1_agreement": "top1",
        "accuracy": "acc",
        "prediction_agreement": "agree",
        "max_abs_error": "max err",
    }
    return " ".join(
        f"{short.get(k, k)} {v:.3g}" if k == "max_abs_error" else f"{short.get(k, k)} {v:.3f}"
        for k, v in fidelity.items()
    )


def _verdict(row: VariantView) -> tuple[str, str]:
    """(accepted?, why not) for one variant."""
    if row.status == "accepted":
        return "yes", ""
    if row.status == "rejected":
        return "no", (row.rejection_reason or "").removeprefix("outside tolerance: ")
    return row.status, ""


VARIANT_COLUMNS = [Col("id", key=True, justify="right"), Col("variant", key=True), Col("accepted?", key=True)]
VARIANT_COLUMNS += [Col("p50 ms", justify="right"), Col("fidelity", min_width=18), Col("why not")]
VARIANT_COLUMNS += [Col(h, justify="right") for h in ("size MB", "req/s", "p95 ms", "load ms")]
VARIANT_COLUMNS += [Col("technique")]


def _noisy(row: VariantView) -> str:
    """``~`` before latencies measured on a busy machine (see thrifty.bench.load)."""
    return "~" if row.noisy else ""


def print_summary(rows: list[VariantView], title: str) -> None:
    """Id, name and verdict always; then latency, size, throughput, fidelity as the width allows."""
    from thrifty.cli import console
    from thrifty.render import print_table

    cells = [
        [str(r.id), r.variant, _verdict(r)[0], _noisy(r) + _fmt(r.latency_ms_p50, ".2f"), _fidelity_text(r.fidelity),
         _verdict(r)[1], _fmt(r.size_mb), _fmt(r.throughput_rps), _noisy(r) + _fmt(r.latency_ms_p95, ".2f"),
         _fmt(r.load_ms, ".0f"), r.technique]
        for r in rows
    ]  # fmt: skip
    print_table(console, VARIANT_COLUMNS, cells, title=title)
    for row in rows:
        if row.noisy:
            console.print(
                f"~ {row.variant}: noisy, measured while {row.noisy}; "
                f"re-measure on a quiet machine with `thrifty bench {row.model}`",
                highlight=False,
            )
    if rows:
        console.print(f"deploy one by id or name: `thrifty deploy-local {rows[0].ref}`", highlight=False)


def _progress() -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from thrifty.cli import err_console

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def bench_all(name: str, version: int | None, spec: BenchSpec, tolerance: Tolerance) -> list[VariantView]:
    """Benchmark and judge every variant of a model version, with a progress bar."""
    from thrifty import read, runtime
    from thrifty.optimize import pipeline
    from thrifty.settings import get_settings

    registry, store = runtime.registry(), runtime.store()
    mv = registry.get_model_version(name, version)
    work = pipeline.work_dir_for(mv, get_settings().home)
    _, evals = pipeline.source_and_evals(mv, store, work)
    variants = registry.list_variants(mv.id)
    with _progress() as bar:
        job = bar.add_task("benchmark", total=len(variants))
        for variant in variants:
            bar.update(job, description=f"benchmark {variant.name}")
            pipeline.benchmark_variant(registry, store, variant, spec, evals)
            pipeline.judge_variant(registry, store, variant, evals, tolerance)
            bar.advance(job)
    return read.variants_of(registry, mv)


def optimize_command(
    name: str = typer.Argument(..., help="registered model name"),
    version: int | None = typer.Option(None, help="model version (default: newest)"),
    techniques: str = typer.Option(
        ",".join(("export", "graph", "dynamic_int8", "blockwise_int8", "static_int8", "fp16", "search")),
        help=TECHNIQUES_HELP,
    ),
    target: str = typer.Option("cpu", help="preset: cpu (from this CPU's flags) or gpu"),
    min_cosine: float = typer.Option(0.99, help="tolerance: minimum mean cosine to the original"),
    min_agreement: float = typer.Option(0.95, help="tolerance: minimum nearest-neighbour / top-1 agreement"),
    bench: bool = typer.Option(True, help="benchmark and judge the variants afterwards"),
    batch_sizes: str = typer.Option("1,8", help="benchmark batch sizes"),
    threads: str = typer.Option("1", help="benchmark thread counts"),
    seq_lens: str = typer.Option("128", help="sequence lengths for text models ('natural' = unpadded)"),
    runs: int = typer.Option(30, help="timed runs per case"),
    module: str | None = typer.Option(
        None,
        "--module",
        help="FILE.py:FUNCTION returning the nn.Module (needed by prune, distill and state dicts); "
        "registered weights are loaded into it",
    ),
    data: str | None = typer.Option(
        None, "--data", help=".npz with 'inputs' (and 'labels'): training data for prune / distill"
    ),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Make variants of a model (ONNX, graph-optimized, int8, fp16, pruned, distilled), then
    benchmark and judge them."""
    from thrifty import read, runtime
    from thrifty.cli import print_json
    from thrifty.optimize import pipeline
    from thrifty.optimize.config import for_cpu, for_gpu
    from thrifty.optimize.user_inputs import UserInputs
    from thrifty.settings import get_settings

    tolerance = _tolerance(min_cosine, min_agreement)
    spec = _spec(batch_sizes, threads, seq_lens, runs)
    chosen = pipeline.check_techniques(_split(techniques))
    preset = for_gpu() if target == "gpu" else for_cpu()
    registry, store = runtime.registry(), runtime.store()
    mv = registry.get_model_version(name, version)
    work = pipeline.work_dir_for(mv, get_settings().home)
    skipped: dict[str, str] = {}
    with _progress() as bar:
        job = bar.add_task("optimize", total=len(chosen))

        def step(technique: str) -> None:
            bar.update(job, description=f"optimize: {technique}", completed=chosen.index(technique))

        pipeline.optimize_version(
            mv,
            chosen,
            registry=registry,
            store=store,
            work_dir=work,
            preset=preset,
            tolerance=tolerance,
            progress=step,
            user=UserInputs(module, data),
            skipped=skipped,
        )
    rows = bench_all(name, version, spec, tolerance) if bench else read.variants_of(registry, mv)
    if json_out:
        print_json(rows)
    else:
        print_summary(rows, f"{name} v{mv.version}: variants ({preset.name})")
    _print_skipped(skipped)


def _print_skipped(skipped: dict[str, str]) -> None:
    from rich.markup import escape

    from thrifty.cli import err_console

    for technique, reason in skipped.items():
        err_console.print(f"[yellow]skipped[/] {technique}: {escape(reason)}")


def bench_command(
    name: str = typer.Argument(..., help="registered model name"),
    version: int | None = typer.Option(None, help="model version (default: newest)"),
    batch_sizes: str = typer.Option("1,8", help="batch sizes"),
    threads: str = typer.Option("1", help="thread counts"),
    seq_lens: str = typer.Option("128", help="sequence lengths for text models ('natural' = unpadded)"),
    runs: int = typer.Option(30, help="timed runs per case"),
    min_cosine: float = typer.Option(0.99, help="tolerance: minimum mean cosine"),
    min_agreement: float = typer.Option(0.95, help="tolerance: minimum NN / top-1 agreement"),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Benchmark every variant of a model (fresh process each) and judge its fidelity."""
    from thrifty.cli import print_json

    rows = bench_all(
        name, version, _spec(batch_sizes, threads, seq_lens, runs), _tolerance(min_cosine, min_agreement)
    )
    if json_out:
        print_json(rows)
    else:
        print_summary(rows, f"{name}: benchmark")


def variants_command(
    name: str = typer.Argument(..., help="registered model name"),
    version: int | None = typer.Option(None, help="model version (default: newest)"),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List a model's variants (id, name, verdict, latency, size, fidelity); deploy one by id or name."""
    from thrifty import read, runtime
    from thrifty.cli import print_json

    rows = read.variants(runtime.registry(), name, version)
    if json_out:
        print_json(rows)
    else:
        shown = f" v{rows[0].version}" if rows else ""
        print_summary(rows, f"{name}{shown}: variants")


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize_command)
    app.command("bench")(bench_command)
    app.command("variants")(variants_command)
