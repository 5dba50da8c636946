"""Make variants of a model: ONNX export, graph optimization, int8 (dynamic, block-wise, static
QDQ), fp16, structured pruning, distillation, and an accuracy-aware int8 search.

Three layers, as in Optimum: configs (``config``), presets (``for_cpu()``, ``for_gpu()``), and one
worker verb per technique that returns the output path (``export_hf_folder``, ``optimize_graph``,
``quantize_dynamic_int8``, ``quantize_blockwise_int8``, ``quantize_static_int8``, ``convert_fp16``,
``prune_model``, ``distill_model``, ``search_int8``). ``pipeline`` registers the results.
Heavy libraries (torch, onnxruntime, optimum) are imported inside the workers.
"""

from __future__ import annotations

from thrifty.optimize.config import (
    BlockwiseQuantConfig,
    DistillConfig,
    DynamicQuantConfig,
    ExportConfig,
    Fp16Config,
    GraphOptConfig,
    Preset,
    PruneConfig,
    StaticQuantConfig,
    Tolerance,
    for_cpu,
    for_gpu,
)

__all__ = [
    "BlockwiseQuantConfig",
    "DistillConfig",
    "DynamicQuantConfig",
    "ExportConfig",
    "Fp16Config",
    "GraphOptConfig",
    "Preset",
    "PruneConfig",
    "StaticQuantConfig",
    "Tolerance",
    "for_cpu",
    "for_gpu",
]
