"""fp16 conversion. On a GPU it speeds things up; on a CPU it only halves the file (recorded so)."""

from __future__ import annotations

from pathlib import Path

from thrifty.errors import OptimizeError
from thrifty.optimize._io import prepare_out, save_config, tmp_path_for
from thrifty.optimize.config import Fp16Config


def convert_fp16(onnx_path: Path, out_dir: Path, config: Fp16Config | None = None) -> Path:
    """Weights and compute to float16 (inputs/outputs stay fp32 by default); returns the new file."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    config = config or Fp16Config()
    target = prepare_out(out_dir)
    try:
        model = onnx.load(str(onnx_path))
        converted = convert_float_to_float16(
            model, keep_io_types=config.keep_io_types, op_block_list=list(config.op_block_list) or None
        )
    except Exception as exc:
        raise OptimizeError(f"fp16 conversion of {onnx_path} failed: {exc}") from exc
    tmp = tmp_path_for(target)
    onnx.save(converted, str(tmp))
    tmp.replace(target)
    save_config(target, "fp16", config, parent=str(onnx_path), note=config.note)
    return target
