"""Offline graph optimization: ONNX Runtime's optimizer, or Optimum's ORTOptimizer for transformers."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from thrifty.errors import OptimizeError
from thrifty.optimize._io import prepare_out, save_config, tmp_path_for
from thrifty.optimize._quiet import GRAPH, GRAPH_STDOUT, known_harmless
from thrifty.optimize.config import GraphOptConfig

LEVEL_NUMBERS = {"basic": 1, "extended": 2, "all": 99}


def optimize_graph(
    onnx_path: Path, out_dir: Path, config: GraphOptConfig | None = None, *, hf_config_dir: Path | None = None
) -> Path:
    """Write the optimized graph to ``out_dir/model.onnx`` and return that path.

    With ``hf_config_dir`` (the original Hugging Face folder) and ``transformer_fusions``, Optimum's
    ORTOptimizer fuses attention, GELU and layer norms; otherwise ONNX Runtime's offline optimizer
    runs at ``config.level``.
    """
    config = config or GraphOptConfig()
    target = prepare_out(out_dir)
    if hf_config_dir is not None and config.transformer_fusions:
        _optimum_optimize(onnx_path, target, config, hf_config_dir)
        engine = "optimum.ORTOptimizer"
    else:
        _ort_optimize(onnx_path, target, config)
        engine = "onnxruntime"
    save_config(target, "graph", config, engine=engine, parent=str(onnx_path))
    return target


def _ort_optimize(onnx_path: Path, target: Path, config: GraphOptConfig) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[config.level]
    tmp = tmp_path_for(target)
    options.optimized_model_filepath = str(tmp)
    try:
        ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise OptimizeError(f"ONNX Runtime could not load {onnx_path}: {exc}", hint="re-export it") from exc
    tmp.replace(target)


@known_harmless(GRAPH, stdout=GRAPH_STDOUT)
def _optimum_optimize(onnx_path: Path, target: Path, config: GraphOptConfig, hf_dir: Path) -> None:
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import OptimizationConfig
    from transformers import AutoConfig

    opt_config = OptimizationConfig(
        optimization_level=LEVEL_NUMBERS[config.level],
        optimize_for_gpu=config.for_gpu,
        fp16=config.fp16,
    )
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp_dir:
        # the optimizer names its output after the input: give it a .onnx name (store blobs have none)
        named = Path(tmp_dir) / "input" / "model.onnx"
        named.parent.mkdir()
        named.symlink_to(onnx_path.resolve())
        try:
            optimizer = ORTOptimizer([named], AutoConfig.from_pretrained(str(hf_dir)))
            optimizer.optimize(opt_config, tmp_dir, file_suffix="optimized")
        except Exception as exc:
            raise OptimizeError(
                f"ORTOptimizer failed on {onnx_path}: {exc}",
                hint="retry with transformer_fusions=False (plain ONNX Runtime optimization)",
            ) from exc
        written = sorted(Path(tmp_dir).glob("model*optimized*.onnx"))
        if not written:
            raise OptimizeError(f"ORTOptimizer wrote no optimized file for {onnx_path}")
        shutil.move(str(written[0]), target)
