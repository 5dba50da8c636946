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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.artifacts import ArtifactStore
from thrifty.bench.evaluation import EvalSet, text_eval_set
from thrifty.bench.harness import BenchSpec, run_benchmark
from thrifty.bench.load import load_note
from thrifty.errors import OptimizeError, ThriftyError
from thrifty.optimize._io import load_config
from thrifty.optimize.config import TECHNIQUES, GraphOptConfig, Preset, Tolerance, for_cpu
from thrifty.optimize.user_inputs import DATA_HINT, MODULE_HINT, UserInputs
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
    "prune": ("pruned", "export"),
    "distill": ("distilled", "export"),
}
PIPELINE_TECHNIQUES = tuple(VARIANT_NAMES)
#: prune and distill run only when asked: they need the module's code and a data file
NEEDS_USER_INPUTS = ("prune", "distill")
DEFAULT_TECHNIQUES = tuple(t for t in PIPELINE_TECHNIQUES if t not in NEEDS_USER_INPUTS)
CLASSIC_FORMATS = ("sklearn", "xgboost", "lightgbm")
#: what each kind of source can go through (a tree ensemble has no MatMul to quantize)
CLASSIC_TECHNIQUES = ("export", "graph")
MODULE_FORMATS = ("state_dict", "safetensors")
TORCHSCRIPT_REASON = (
    "a TorchScript archive records its arguments' types (Tensor) but not their shapes or dtypes, so "
    "there is no example input to export with; and torch 2.13's ONNX exporter (dynamo) traces with "
    "torch.export, which cannot trace a ScriptModule"
)
TORCHSCRIPT_HINT = (
    "save a torch.export archive instead: torch.export.save(torch.export.export(model, (example,)), "
    "'model.pt2'), or export ONNX yourself: torch.onnx.export(scripted, (example,), 'model.onnx', "
    "dynamo=False), and ingest that"
)


def check_techniques(techniques: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate names and add the parents a technique needs (int8 needs graph needs export)."""
    unknown = [t for t in techniques if t not in TECHNIQUES]
    if unknown:
        raise OptimizeError(f"unknown technique(s) {', '.join(unknown)}", hint=f"use {', '.join(TECHNIQUES)}")
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
    tokenizer_dir: Path | None = None
    user: UserInputs = field(default_factory=UserInputs)

    @property
    def is_hf(self) -> bool:
        return self.hf_dir is not None

    @property
    def format(self) -> str:
        return str(self.version.format)


def check_user_inputs(fmt: str, techniques: tuple[str, ...], user: UserInputs) -> None:
    """Refuse, before any work, a run that lacks what its techniques need (saying what is missing)."""
    if fmt == "torchscript":
        raise OptimizeError(
            f"TorchScript cannot be exported here: {TORCHSCRIPT_REASON}", hint=TORCHSCRIPT_HINT
        )
    asked = [t for t in techniques if t in NEEDS_USER_INPUTS]
    if asked and fmt in CLASSIC_FORMATS:
        raise OptimizeError(
            f"{', '.join(asked)} apply to neural networks, not to a {fmt} model",
            hint=f"use --techniques {','.join(CLASSIC_TECHNIQUES)}",
        )
    needs_module = (bool(asked) and fmt not in ("torch_export",)) or fmt in MODULE_FORMATS
    missing: dict[str, str] = {}
    if needs_module and not user.module:
        missing["the module's code"] = MODULE_HINT
    if (asked or fmt in MODULE_FORMATS) and not user.data:
        missing["a data file"] = DATA_HINT  # training data, and the example input of an export
    if missing:
        what = ", ".join(asked) if asked else f"a {fmt} model (weights without an architecture)"
        raise OptimizeError(f"{what} needs " + " and ".join(missing), hint="; ".join(missing.values()))


def open_source(
    version: ModelVersion, store: ArtifactStore, work_dir: Path, user: UserInputs | None = None
) -> Source:
    from thrifty.ingest import materialize

    user = (user or UserInputs()).merged(UserInputs.load(work_dir))
    path = materialize(version, store, work_dir / "cache")
    if version.format == "huggingface":
        return Source(version, path, path, work_dir, user=user)
    tokenizer = version.details.get("tokenizer")
    supported = ("onnx", "torch_export", *CLASSIC_FORMATS)
    if version.format in supported or (version.format in MODULE_FORMATS and user.module):
        return Source(version, path, None, work_dir, path.parent / tokenizer if tokenizer else None, user)
    check_user_inputs(version.format, (), user)
    raise OptimizeError(
        f"model {version.model.name!r} v{version.version} is {version.format}, which cannot be exported",
        hint="export it to ONNX yourself (torch.onnx.export) and ingest the .onnx file",
    )


def eval_set_for(source: Source) -> EvalSet:
    """The default eval set: sentences for text models (their own tokenizer), the user's data for
    a module, generated inputs (valid for each input's dtype and vocabulary) otherwise."""
    from thrifty.bench import evaluation

    if source.hf_dir is not None:
        return text_eval_set(source.hf_dir)
    if source.format == "onnx" and source.tokenizer_dir is not None:
        return evaluation.onnx_text_eval_set(source.path, source.tokenizer_dir)
    if source.format == "onnx":
        return evaluation.synthetic_eval_set(source.path, onnx_vocab_sizes(source.path))
    if source.format in CLASSIC_FORMATS:
        return _classic_eval_set(source)
    if source.user.data:
        return _module_eval_set(source)
    return _torch_eval_set(source)


def onnx_vocab_sizes(onnx_path: Path) -> dict[str, int]:
    import onnx

    from thrifty.ingest.inspect_onnx import vocab_sizes

    return vocab_sizes(onnx.load_model(str(onnx_path), load_external_data=False))


def _classic_eval_set(source: Source) -> EvalSet:
    from thrifty.bench.evaluation import reference_eval_set, signature_specs
    from thrifty.ingest.inspect_classic import load_classic, predict

    model = load_classic(source.format, source.path)
    task = "label" if source.version.task == "classification" else "regression"
    return reference_eval_set(
        lambda feeds: predict(source.format, model, feeds["input"]),
        signature_specs(source.version.signature),
        task,
    )


def _torch_eval_set(source: Source) -> EvalSet:
    """A torch.export program (or the user's module) on generated inputs; the reference is its
    own output in PyTorch, so the export itself is judged too."""
    import torch

    from thrifty.bench.evaluation import reference_eval_set, signature_specs

    module = load_module(source)
    specs = signature_specs(source.version.signature)

    def predict(feeds: dict[str, Any]) -> Any:
        with torch.inference_mode():
            out = module(*[torch.from_numpy(feeds[name]) for name, _, _ in specs])
        return (out[0] if isinstance(out, tuple | list) else out).numpy()

    return reference_eval_set(predict, specs, "classification")


def _module_eval_set(source: Source) -> EvalSet:
    """The held-out part of the user's data; the reference is the module's output on it."""
    from thrifty.bench.evalsets import batches
    from thrifty.optimize.training import predict
    from thrifty.optimize.user_inputs import load_data, split

    _, (inputs, labels) = split(*load_data(str(source.user.data)))
    reference = predict(load_module(source), inputs)
    feeds = batches({"input": inputs}, 64)
    return EvalSet("classification", feeds, reference.astype(np.float32), labels, {"kind": "synthetic"})


def load_module(source: Source) -> Any:
    """The original as an ``nn.Module``: the user's factory (+ registered weights), or the program."""
    import torch

    if source.user.module:
        from thrifty.optimize.user_inputs import build_module

        weights = _registered_weights(source) if source.format in MODULE_FORMATS else None
        return build_module(source.user.module, weights)
    if source.format == "torch_export":
        return torch.export.load(str(source.path)).module()
    raise OptimizeError(f"{source.format} model without the module's code", hint=MODULE_HINT)


def _registered_weights(source: Source) -> dict[str, Any]:
    import torch

    if source.format == "safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(source.path)))
    return dict(torch.load(str(source.path), map_location="cpu", weights_only=True))


def run_technique(
    technique: str,
    parent: Path | None,
    source: Source,
    out_dir: Path,
    preset: Preset,
    evals: EvalSet,
    tolerance: Tolerance,
) -> Path:
    """One worker call; returns the produced ONNX file. A library's own exception becomes an
    ``OptimizeError`` naming the technique, so no failure reaches a user as a traceback."""
    try:
        return _run_technique(technique, parent, source, out_dir, preset, evals, tolerance)
    except ThriftyError:
        raise
    except Exception as exc:
        raise OptimizeError(
            f"{technique} failed on {source.version.model.name!r} v{source.version.version}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint=f"leave {technique} out of --techniques for this model",
        ) from exc


def _run_technique(
    technique: str,
    parent: Path | None,
    source: Source,
    out_dir: Path,
    preset: Preset,
    evals: EvalSet,
    tolerance: Tolerance,
) -> Path:
    from thrifty.optimize import fp16, graph, quantize, search

    if technique == "export":
        return _export(source, out_dir, preset)
    if technique in NEEDS_USER_INPUTS:
        return _train_variant(technique, source, out_dir, preset)
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


def _export(source: Source, out_dir: Path, preset: Preset) -> Path:
    """The original as ONNX, whatever format it came in."""
    from thrifty.optimize import export

    if source.hf_dir is not None:
        return export.export_hf_folder(source.hf_dir, out_dir, preset.export)
    if source.format == "onnx":
        return source.path
    if source.format in CLASSIC_FORMATS:
        from thrifty.optimize.classic import convert_classic

        return convert_classic(source.format, source.path, out_dir)
    if source.format == "torch_export" and not source.user.module:
        return export.export_exported_program(source.path, out_dir, preset.export)
    inputs = _user_data(source)[0][0]
    return export.export_torch_module(
        load_module(source), (_example(inputs),), out_dir, _module_export_config(), input_names=("input",)
    )


def _module_export_config() -> Any:
    from thrifty.optimize.config import ExportConfig

    return ExportConfig(dynamic_sequence=False, normalize=False, pooling="none")


def _example(inputs: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(inputs[:2].astype(np.float32))


def _user_data(
    source: Source,
) -> tuple[tuple[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]:
    from thrifty.optimize.user_inputs import load_data, split

    if not source.user.data:
        raise OptimizeError(f"{source.format} model needs a data file for its example input", hint=DATA_HINT)
    return split(*load_data(source.user.data))


def _train_variant(technique: str, source: Source, out_dir: Path, preset: Preset) -> Path:
    """prune (structured, then a short fine-tune on the labels) or distill (into a pruned copy)."""
    (inputs, labels), _ = _user_data(source)
    module = load_module(source)
    if technique == "prune":
        from thrifty.optimize.prune import prune_model

        train = (inputs, labels) if labels is not None else None
        return prune_model(
            module,
            _example(inputs),
            out_dir,
            preset.prune,
            train_data=train,
            export_config=_module_export_config(),
        )
    from thrifty.optimize.distill import distill_into_pruned

    return distill_into_pruned(
        module, inputs, out_dir, preset.distill, labels=labels, prune_config=preset.prune
    )


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
    version: ModelVersion,
    store: ArtifactStore,
    work_dir: Path,
    evals: EvalSet | None = None,
    user: UserInputs | None = None,
) -> tuple[Source, EvalSet]:
    """The original model and its eval set (cached per process: the reference costs a model run)."""
    # one thread at a time: techniques mapped in parallel share the eval set, and importing
    # transformers from two threads at once can see a half-initialized module
    with _EVAL_LOCK:
        source = open_source(version, store, work_dir, user)
        if evals is None:
            key = (version.id, f"{work_dir}|{source.user.module}|{source.user.data}")
            if key not in _EVAL_CACHE:
                _EVAL_CACHE[key] = eval_set_for(source)
            evals = _EVAL_CACHE[key]
    return source, evals


def applies(technique: str, fmt: str) -> str | None:
    """Why ``technique`` does not apply to a model of format ``fmt`` (None when it does)."""
    if fmt in CLASSIC_FORMATS and technique not in CLASSIC_TECHNIQUES:
        return f"{technique} does not apply to a {fmt} model (no float MatMul / Conv weights to convert)"
    return None


def applicable_techniques(techniques: list[str] | tuple[str, ...], fmt: str) -> tuple[str, ...]:
    """``check_techniques`` less those that do not apply to a model of format ``fmt``."""
    return tuple(t for t in check_techniques(techniques) if applies(t, fmt) is None)


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
    user: UserInputs | None = None,
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
    reason = applies(technique, version.format)
    if reason is not None:
        raise OptimizeError(reason, hint=f"use --techniques {','.join(CLASSIC_TECHNIQUES)}")
    if user is not None:
        user = user.merged(UserInputs.load(work_dir))
        user.save(work_dir)  # a later benchmark or judge of this version uses the same data
    source, evals = source_and_evals(version, store, work_dir, evals, user)
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
    user: UserInputs | None = None,
    skipped: dict[str, str] | None = None,
) -> list[Variant]:
    """Run ``techniques`` (plus the parents they need) on ``version``, in order.

    With ``skipped`` (a dict), a technique that does not apply to this model or fails after the
    export is recorded there (technique → why) and the others go on; without it, it raises.
    """
    chosen = check_techniques(techniques)
    user = (user or UserInputs()).merged(UserInputs.load(work_dir))
    check_user_inputs(version.format, chosen, user)
    user.save(work_dir)
    made: dict[str, Variant] = {}
    for technique in chosen:
        if progress:
            progress(technique)
        parent_technique = VARIANT_NAMES[technique][1]
        if skipped is not None and _skip_reason(technique, parent_technique, version, made, skipped):
            continue
        try:
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
                user=user,
            )
        except ThriftyError as exc:
            if skipped is None or technique == "export":
                raise
            skipped[technique] = str(exc)
    return list(made.values())


def _skip_reason(
    technique: str,
    parent: str | None,
    version: ModelVersion,
    made: dict[str, Variant],
    skipped: dict[str, str],
) -> bool:
    reason = applies(technique, version.format)
    if reason is None and parent is not None and parent not in made:
        reason = f"needs the {parent} variant, which was not made ({parent} skipped)"
    if reason is not None:
        skipped[technique] = reason
    return reason is not None


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
            details={
                "runtime": result.get("runtime", "onnxruntime"),
                "runs": int(case["runs"]),
                "load": result.get("load", {}),  # how busy the machine was (bench/load.py)
            },
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
    keys = (
        "cosine_mean",
        "nn_agreement",
        "top1_agreement",
        "accuracy",
        "prediction_agreement",
        "max_abs_error",
    )
    headline = {k: fid[k] for k in keys if k in fid}
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
        "noisy": load_note(result.details) if result else None,
        "fidelity": headline,
        "status": variant.status,
        "rejection_reason": variant.rejection_reason,
    }
