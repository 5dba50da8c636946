"""ONNX export: PyTorch modules (torch 2.13's exporter with onnxscript) and Hugging Face folders.

A sentence-transformers folder is exported as the *sentence* embedding model it serves: the
transformer, its pooling (mean over the attention mask by default) and L2 normalization, so the
ONNX output ``sentence_embedding`` is what the user's ``model.encode`` returns. Other Hugging Face
folders go through Optimum's exporter.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thrifty.bench.reference import sentence_embedding_module
from thrifty.errors import OptimizeError
from thrifty.optimize._io import prepare_out, save_config, tmp_path_for
from thrifty.optimize._quiet import EXPORT, known_harmless
from thrifty.optimize.config import ExportConfig

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@known_harmless(EXPORT)
def export_torch_module(
    module: Any,
    example_inputs: tuple[Any, ...],
    out_dir: Path,
    config: ExportConfig | None = None,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] = ("output",),
) -> Path:
    """Export an ``nn.Module`` to ``out_dir/model.onnx`` (one file unless it is over 2 GB)."""
    import torch

    config = config or ExportConfig()
    names = list(input_names or [f"input_{i}" for i in range(len(example_inputs))])
    dims = _dynamic_shapes(names, example_inputs, config)
    target = prepare_out(out_dir)
    param_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    external = param_bytes > config.external_data_above_bytes
    module = module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # exporter deprecation chatter, not about this model
            program = torch.onnx.export(
                module,
                example_inputs,
                dynamo=True,
                dynamic_shapes=dims,
                input_names=names,
                output_names=list(output_names),
                opset_version=config.opset,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:
        raise OptimizeError(
            f"torch.onnx.export failed on {type(module).__name__}: {exc}",
            hint="check the example inputs match forward(); unsupported ops are named above",
        ) from exc
    if program is None:
        raise OptimizeError(f"torch.onnx.export returned nothing for {type(module).__name__}")
    _save_program(program, target, external)
    save_config(target, "export", config, parameter_bytes=param_bytes, external_data=external)
    return target


def export_exported_program(path: Path, out_dir: Path, config: ExportConfig | None = None) -> Path:
    """A ``torch.export`` archive (.pt2) to ONNX: the program carries its graph, example shapes
    and dynamic dims, so no Python class is needed."""
    import torch

    config = config or ExportConfig()
    target = prepare_out(out_dir)
    try:
        program = torch.export.load(str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter deprecation chatter, not about this model
            onnx_program = torch.onnx.export(
                program, (), dynamo=True, opset_version=config.opset, optimize=True, verbose=False
            )
    except Exception as exc:
        raise OptimizeError(
            f"torch.onnx.export failed on the torch.export program {path}: {str(exc).splitlines()[0]}",
            hint="ops without an ONNX translation are named above; export ONNX yourself and ingest it",
        ) from exc
    if onnx_program is None:
        raise OptimizeError(f"torch.onnx.export returned nothing for {path}")
    param_bytes = sum(t.numel() * t.element_size() for t in program.state_dict.values())
    external = param_bytes > config.external_data_above_bytes
    _save_program(onnx_program, target, external)
    save_config(target, "export", config, source="torch_export", parameter_bytes=param_bytes)
    return target


def _dynamic_shapes(names: list[str], inputs: tuple[Any, ...], config: ExportConfig) -> dict[str, Any]:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("sequence", min=1, max=4096)
    shapes: dict[str, Any] = {}
    for name, value in zip(names, inputs, strict=True):
        axes: dict[int, Any] = {}
        if config.dynamic_batch:
            axes[0] = batch
        if config.dynamic_sequence and name in TEXT_INPUTS and value.dim() > 1:
            axes[1] = seq
        shapes[name] = axes
    return shapes


def _save_program(program: Any, target: Path, external: bool) -> None:
    tmp = tmp_path_for(target)
    program.save(str(tmp), external_data=external)
    tmp.replace(target)
    if external:
        data_file = tmp.with_name(tmp.name + ".data")
        if data_file.exists():
            data_file.replace(target.with_name(target.name + ".data"))


def is_sentence_transformers(folder: Path) -> bool:
    return (folder / "modules.json").exists() or (folder / "config_sentence_transformers.json").exists()


def export_sentence_transformer(folder: Path, out_dir: Path, config: ExportConfig | None = None) -> Path:
    """Export a sentence-transformers folder to ONNX with output ``sentence_embedding``."""
    from transformers import AutoTokenizer

    config = config or ExportConfig()
    module = sentence_embedding_module(folder, config.pooling, config.normalize)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))  # type: ignore[no-untyped-call]
    enc = tokenizer(["an example", "a second, longer example sentence"], padding=True, return_tensors="pt")
    inputs = tuple(enc[name] for name in TEXT_INPUTS)
    target = export_torch_module(
        module, inputs, out_dir, config, input_names=TEXT_INPUTS, output_names=("sentence_embedding",)
    )
    save_config(target, "export", config, source="sentence-transformers", tokenizer_dir=str(folder))
    return target


def export_hf_folder(folder: Path, out_dir: Path, config: ExportConfig | None = None) -> Path:
    """Any Hugging Face folder: sentence-transformers directly, others with Optimum's exporter."""
    config = config or ExportConfig()
    if is_sentence_transformers(folder):
        return export_sentence_transformer(folder, out_dir, config)
    from optimum.exporters.onnx import main_export

    try:
        main_export(str(folder), output=str(out_dir), opset=config.opset, device="cpu", no_post_process=False)
    except Exception as exc:
        raise OptimizeError(
            f"optimum could not export {folder}: {exc}",
            hint="pass the task explicitly or export the model yourself and ingest the ONNX file",
        ) from exc
    target = out_dir / "model.onnx"
    if not target.exists():
        raise OptimizeError(f"optimum wrote no model.onnx in {out_dir}", hint="check the export log above")
    save_config(target, "export", config, source="optimum", tokenizer_dir=str(folder))
    return target
