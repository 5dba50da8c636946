"""Registry glue: make a model version's variants, register them, benchmark and judge them.

Each variant is one ONNX file in the content-addressed store, registered with
``Registry.add_variant`` (linked to its parent variant, the config used in ``Variant.config``).
Benchmarking writes ``BenchmarkResult`` rows and marks each variant accepted or rejected against
the tolerance; a rejected variant carries the number that failed and is never chosen downstream.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.artifacts import ArtifactStore
from thrifty.bench.evaluation import EvalSet, text_eval_set
from thrifty.bench.harness import BenchSpec, run_benchmark
from thrifty.errors import OptimizeError
from thrifty.optimize._io import load_config
from thrifty.optimize.config import TECHNIQUES, GraphOptConfig, Preset, Tolerance, for_cpu
from thrifty.registry import Registry
from thrifty.registry.models import Artifact, BenchmarkResult, ModelVersion, Variant

#: technique → (variant name, the technique whose output it starts from)
VARIANT_NAMES: dict[str, tuple[str, str | None]] = {
    "export": ("onnx-fp32", None),
    "graph": ("onnx-graph", "export"),
    "dynamic_int8": ("int8-dynamic", "graph"),
    "blockwise_int8": ("int8-blockwise", "graph"),
    "smooth_int8": ("int8-smooth", "graph"),
    "static_int8": ("int8-static-qdq", "graph"),
    "fp16": ("fp16", "graph"),
    "search": ("int8-search", "graph"),
}
PIPELINE_TECHNIQUES = tuple(VARIANT_NAMES)
DEFAULT_TECHNIQUES = PIPELINE_TECHNIQUES


def check_techniques(techniques: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate names and add the parents a technique needs (int8 needs graph needs export)."""
    unknown = [t for t in techniques if t not in TECHNIQUES]
    if unknown:
        raise OptimizeError(f"unknown technique(s) {', '.join(unknown)}", hint=f"use {', '.join(TECHNIQUES)}")
    torch_only = [t for t in techniques if t not in VARIANT_NAMES]
    if torch_only:
        raise OptimizeError(
            f"{', '.join(torch_only)} need a PyTorch module and training data, not a registered model",
            hint="call thrifty.optimize.prune_model / distill_model from Python (see README), "
            "then register the result with register_variant",
        )
    needed = set(techniques)
    for technique in list(techniques):
        parent = VARIANT_NAMES[technique][1]
        while parent is not None:
            needed.add(parent)
            parent = VARIANT_NAMES[parent][1]
    return tuple(t for t in PIPELINE_TECHNIQUES if t in needed)


@dataclass
class Source:
    """The original model as the techniques need it."""

    version: ModelVersion
    path: Path
    hf_dir: Path | None
    work_dir: Path

    @property
    def is_hf(self) -> bool:
        return self.hf_dir is not None


def open_source(version: ModelVersion, store: ArtifactStore, work_dir: Path) -> Source:
    from thrifty.ingest import materialize

    path = materialize(version, store, work_dir / "cache")
    if version.format == "huggingface":
        return Source(version, path, path, work_dir)
    if version.format == "onnx":
        return Source(version, path, None, work_dir)
    raise OptimizeError(
        f"model {version.model.name!r} v{version.version} is {version.format}: without the Python class "
        "it cannot be exported here",
        hint="export it to ONNX yourself (torch.onnx.export) and ingest the .onnx file, "
        "or ingest the Hugging Face folder",
    )


def eval_set_for(source: Source) -> EvalSet:
    """The default eval set: built-in sentences for text models, random inputs otherwise."""
    if source.hf_dir is not None:
        return text_eval_set(source.hf_dir)
    from thrifty.bench.evaluation import array_eval_set

    return array_eval_set(source.path, random_inputs(source.path), task="classification")


def random_inputs(onnx_path: Path, count: int = 128) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds: dict[str, Any] = {}
    for item in session.get_inputs():
        dims = [count] + [d if isinstance(d, int) else 16 for d in item.shape[1:]]
        feeds[item.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def run_technique(
    technique: str,
    parent: Path | None,
    source: Source,
    out_dir: Path,
    preset: Preset,
    evals: EvalSet,
    tolerance: Tolerance,
) -> Path:
    """One worker call; returns the produced ONNX file."""
    from thrifty.optimize import export, fp16, graph, quantize, search

    if technique == "export":
        if source.hf_dir is not None:
            return export.export_hf_folder(source.hf_dir, out_dir, preset.export)
        return source.path
    if parent is None:
        raise OptimizeError(f"technique {technique!r} needs its parent variant first")
    if technique == "graph":
        return graph.optimize_graph(
            parent, out_dir, _graph_config(preset, source), hf_config_dir=source.hf_dir
        )
    if technique == "dynamic_int8":
        return quantize.quantize_dynamic_int8(parent, out_dir, _need(preset.dynamic, technique, preset))
    if technique == "blockwise_int8":
        return quantize.quantize_blockwise_int8(parent, out_dir, _need(preset.blockwise, technique, preset))
    if technique == "smooth_int8":
        cfg = _need(preset.smooth, technique, preset)
        calibration = search.split_eval_set(evals).search.calibration_feeds()
        return quantize.quantize_smooth_int8(parent, out_dir, calibration, cfg)
    if technique == "static_int8":
        cfg = _need(preset.static, technique, preset)
        return quantize.quantize_static_int8(parent, out_dir, evals.calibration_feeds(), cfg)
    if technique == "fp16":
        return fp16.convert_fp16(parent, out_dir, _need(preset.fp16, technique, preset))
    result = search.search_int8(
        parent,
        out_dir,
        evals,
        evals.timing_feeds(),
        tolerance,
        _need(preset.dynamic, technique, preset),
        smooth=preset.smooth,
    )
    if result.path is None:
        raise OptimizeError(
            f"no int8 candidate met the tolerance (last: {result.fidelity})",
            hint="loosen the tolerance or keep an fp32/fp16 variant",
        )
    return result.path


def _graph_config(preset: Preset, source: Source) -> GraphOptConfig:
    """Without Optimum's transformer fusions, save the graph at 'basic' level: ORT's extended
    fusions write com.microsoft ops the quantizers cannot type, and the serving session applies
    them again at load time anyway."""
    if source.hf_dir is None and preset.graph.level != "basic":
        return dataclasses.replace(preset.graph, level="basic")
    return preset.graph


def _need(config: Any, technique: str, preset: Preset) -> Any:
    if config is None:
        raise OptimizeError(
            f"preset {preset.name!r} has no config for {technique!r}", hint="pick another preset"
        )
    return config


def register_variant(
    registry: Registry,
    store: ArtifactStore,
    version: ModelVersion,
    name: str,
    technique: str,
    path: Path,
    parent_variant_id: int | None = None,
) -> Variant:
    """Store ``path`` (content-addressed) and register it as a variant of ``version``."""
    blob = store.put_file(path)
    artifact = _upsert_artifact(registry, blob.sha256, blob.size_bytes, blob.uri)
    config = load_config(path) or {"technique": technique}
    variant, _ = registry.add_variant(
        version.id,
        name,
        technique=technique,
        artifact=artifact,
        parent_variant_id=parent_variant_id,
        config=json.loads(json.dumps(config, default=str)),
    )
    return variant


def _upsert_artifact(registry: Registry, sha256: str, size_bytes: int, uri: str) -> Artifact:
    """Upsert that tolerates a twin: two techniques mapped in parallel can write identical bytes
    (the search's first candidate is plain int8) and race to insert the same sha256."""
    from sqlalchemy.exc import IntegrityError

    try:
        return registry.upsert_artifact(sha256, size_bytes, uri, kind="variant")
    except IntegrityError:
        found = registry.get_artifact(sha256)
        if found is None:
            raise
        return found


Progress = Callable[[str], None]
_EVAL_CACHE: dict[tuple[int, str], EvalSet] = {}
_EVAL_LOCK = threading.RLock()


def work_dir_for(version: ModelVersion, home: Path) -> Path:
    return home / "work" / f"{version.model.name}-v{version.version}"


def source_and_evals(
    version: ModelVersion, store: ArtifactStore, work_dir: Path, evals: EvalSet | None = None
) -> tuple[Source, EvalSet]:
    """The original model and its eval set (cached per process: the reference costs a model run)."""
    # one thread at a time: techniques mapped in parallel share the eval set, and importing
    # transformers from two threads at once can see a half-initialized module
    with _EVAL_LOCK:
        source = open_source(version, store, work_dir)
        if evals is None:
            key = (version.id, str(work_dir))
            if key not in _EVAL_CACHE:
                _EVAL_CACHE[key] = eval_set_for(source)
            evals = _EVAL_CACHE[key]
    return source, evals


def make_variant(
    version: ModelVersion,
    technique: str,
    *,
    registry: Registry,
    store: ArtifactStore,
    work_dir: Path,
    parent: Variant | None = None,
    preset: Preset | None = None,
    tolerance: Tolerance | None = None,
    evals: EvalSet | None = None,
) -> Variant:
    """One technique on one version → a registered variant (the existing one if already made)."""
    name, parent_technique = VARIANT_NAMES[check_techniques([technique])[-1]]
    found = {v.name: v for v in registry.list_variants(version.id)}.get(name)
    if found is not None:
        return found
    if parent_technique is not None and parent is None:
        raise OptimizeError(
            f"{technique!r} starts from the {parent_technique!r} variant", hint="make it first"
        )
    source, evals = source_and_evals(version, store, work_dir, evals)
    parent_path = (
        _private_copy(store.fetch(parent.artifact.sha256), work_dir / name) if parent is not None else None
    )
    path = run_technique(
        technique, parent_path, source, work_dir / name, preset or for_cpu(), evals, tolerance or Tolerance()
    )
    return register_variant(
        registry, store, version, name, technique, path, parent.id if parent is not None else None
    )


def _private_copy(blob: Path, folder: Path) -> Path:
    """The parent as ``parent.onnx`` in this technique's own folder.

    onnxruntime's quantizers write scratch files (``*-inferred``) next to their input; techniques
    mapped in parallel on the same stored blob would delete each other's scratch files.
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "parent.onnx"
    if not target.exists() or target.stat().st_size != blob.stat().st_size:
        tmp = folder / ".parent.onnx.tmp"
        shutil.copyfile(blob, tmp)
        tmp.replace(target)
    return target


def optimize_version(
    version: ModelVersion,
    techniques: tuple[str, ...],
    *,
    registry: Registry,
    store: ArtifactStore,
    work_dir: Path,
    preset: Preset | None = None,
    tolerance: Tolerance | None = None,
    evals: EvalSet | None = None,
    progress: Progress | None = None,
) -> list[Variant]:
    """Run ``techniques`` (plus the parents they need) on ``version``, in order."""
    made: dict[str, Variant] = {}
    for technique in check_techniques(techniques):
        if progress:
            progress(technique)
        parent_technique = VARIANT_NAMES[technique][1]
        made[technique] = make_variant(
            version,
            technique,
            registry=registry,
            store=store,
            work_dir=work_dir,
            parent=made.get(parent_technique) if parent_technique else None,
            preset=preset,
            tolerance=tolerance,
            evals=evals,
        )
    return list(made.values())


def benchmark_rows(variant_id: int, result: dict[str, Any]) -> list[BenchmarkResult]:
    """BenchmarkResult rows from one harness result (one row per case)."""
    return [
        BenchmarkResult(
            variant_id=variant_id,
            batch_size=int(case["batch_size"]),
            threads=int(case["threads"]),
            seq_len=case.get("seq_len"),
            latency_ms_p50=float(case["latency_ms_p50"]),
            latency_ms_p95=float(case["latency_ms_p95"]),
            latency_ms_p99=float(case["latency_ms_p99"]),
            throughput_rps=float(case["throughput_rps"]),
            peak_memory_mib=float(result["peak_memory_mib"]),
            load_ms=float(result["load_ms"]) if result.get("load_ms") is not None else None,
            file_size_bytes=int(result["file_size_bytes"]),
            hardware=dict(result["hardware"]),
            details={"runtime": result.get("runtime", "onnxruntime"), "runs": int(case["runs"])},
        )
        for case in result["cases"]
    ]


def judge_variant(
    registry: Registry, store: ArtifactStore, variant: Variant, evals: EvalSet, tolerance: Tolerance
) -> Variant:
    """Measure fidelity on the eval set and mark the variant accepted or rejected (with the number)."""
    from thrifty.optimize.search import guardrail_eval_set

    verdict = guardrail_eval_set(evals, variant.technique).judge(
        store.fetch(variant.artifact.sha256), tolerance
    )
    status = "accepted" if verdict["accepted"] else "rejected"
    fidelity = {k: v for k, v in verdict.items() if k not in {"accepted", "rejection_reason"}}
    fidelity["tolerance"] = {"min_cosine": tolerance.min_cosine, "min_agreement": tolerance.min_agreement}
    return registry.update_variant(
        variant.id, status=status, rejection_reason=verdict["rejection_reason"], fidelity=fidelity
    )


def benchmark_variant(
    registry: Registry, store: ArtifactStore, variant: Variant, spec: BenchSpec, evals: EvalSet
) -> list[BenchmarkResult]:
    """Time the variant in a fresh process and store one row per case."""
    spec.inputs = evals.bench_inputs
    result = run_benchmark(store.fetch(variant.artifact.sha256), spec)
    return registry.add_benchmark_results(benchmark_rows(variant.id, result))


def summarize(registry: Registry, version: ModelVersion) -> list[dict[str, Any]]:
    """One row per variant: size, latency at the smallest batch, load time, fidelity, verdict."""
    variants = registry.list_variants(version.id)
    results = registry.list_benchmark_results([v.id for v in variants])
    rows = []
    for variant in variants:
        mine = sorted(
            (r for r in results if r.variant_id == variant.id),
            key=lambda r: (r.batch_size, r.threads, r.seq_len or 0, -r.id),
        )
        first = mine[0] if mine else None
        rows.append(_summary_row(variant, first))
    return rows


def _summary_row(variant: Variant, result: BenchmarkResult | None) -> dict[str, Any]:
    fid = variant.fidelity or {}
    headline = {k: fid[k] for k in ("cosine_mean", "nn_agreement", "top1_agreement", "accuracy") if k in fid}
    return {
        "variant": variant.name,
        "id": variant.id,
        "technique": variant.technique,
        "parent_variant_id": variant.parent_variant_id,
        "size_mb": variant.artifact.size_bytes / 1e6,
        "batch_size": result.batch_size if result else None,
        "seq_len": result.seq_len if result else None,
        "latency_ms_p50": result.latency_ms_p50 if result else None,
        "latency_ms_p95": result.latency_ms_p95 if result else None,
        "throughput_rps": result.throughput_rps if result else None,
        "load_ms": result.load_ms if result else None,
        "peak_memory_mib": result.peak_memory_mib if result else None,
        "fidelity": headline,
        "status": variant.status,
        "rejection_reason": variant.rejection_reason,
    }
