"""int8 quantization with ONNX Runtime: dynamic (per-channel by default) and static QDQ."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import OptimizeError
from thrifty.optimize._io import prepare_out, save_config, tmp_path_for
from thrifty.optimize._quiet import QUANTIZE, known_harmless
from thrifty.optimize.config import BlockwiseQuantConfig, DynamicQuantConfig, StaticQuantConfig


def _quant_type(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QInt8 if name == "qint8" else QuantType.QUInt8


@known_harmless(QUANTIZE)
def quantize_dynamic_int8(onnx_path: Path, out_dir: Path, config: DynamicQuantConfig | None = None) -> Path:
    """Weights to int8 ahead of time, activations quantized at run time; returns the new file."""
    from onnxruntime.quantization import quantize_dynamic

    config = config or DynamicQuantConfig()
    target = prepare_out(out_dir)
    tmp = tmp_path_for(target)
    try:
        quantize_dynamic(
            onnx_path,
            tmp,
            op_types_to_quantize=list(config.op_types),
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=_quant_type(config.weight_type),
            nodes_to_exclude=list(config.nodes_to_exclude),
            extra_options={"MatMulConstBOnly": True},
        )
    except Exception as exc:
        raise OptimizeError(f"dynamic int8 quantization of {onnx_path} failed: {exc}") from exc
    tmp.replace(target)
    save_config(target, "dynamic_int8", config, parent=str(onnx_path))
    return target


class FeedsCalibrationReader:
    """ONNX Runtime's CalibrationDataReader over a list of input feeds (user data or the eval set)."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]], limit: int) -> None:
        self._feeds = [dict(f) for _, f in zip(range(limit), feeds, strict=False)]
        self._iter: Iterator[dict[str, np.ndarray]] = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)


@known_harmless(QUANTIZE)
def quantize_static_int8(
    onnx_path: Path,
    out_dir: Path,
    calibration_feeds: Iterable[dict[str, np.ndarray]],
    config: StaticQuantConfig | None = None,
) -> Path:
    """Static QDQ int8: activation ranges calibrated on ``calibration_feeds``; returns the new file."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        quantize_static,
    )

    config = config or StaticQuantConfig()
    reader = FeedsCalibrationReader(calibration_feeds, config.calibration_samples)
    if len(reader) == 0:
        raise OptimizeError(
            f"no calibration samples for static quantization of {onnx_path}",
            hint="pass calibration data (or an eval set) with at least one input",
        )
    CalibrationDataReader.register(FeedsCalibrationReader)
    target = prepare_out(out_dir)
    tmp = tmp_path_for(target)
    try:
        quantize_static(
            onnx_path,
            tmp,
            reader,  # type: ignore[arg-type]
            quant_format=QuantFormat.QDQ if config.quant_format == "qdq" else QuantFormat.QOperator,
            op_types_to_quantize=list(config.op_types) or None,
            per_channel=config.per_channel,
            activation_type=_quant_type(config.activation_type),
            weight_type=_quant_type(config.weight_type),
            nodes_to_exclude=list(config.nodes_to_exclude),
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[config.calibration_method],
        )
    except Exception as exc:
        raise OptimizeError(f"static int8 quantization of {onnx_path} failed: {exc}") from exc
    tmp.replace(target)
    save_config(target, "static_int8", config, parent=str(onnx_path), calibration_samples_used=len(reader))
    return target


def count_ops(onnx_path: Path) -> dict[str, int]:
    """How many nodes of each op type the graph has (tests assert on the structure)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def weight_matmuls(onnx_path: Path) -> list[str]:
    """Names of MatMul/Gemm nodes whose second input is a weight (the ones int8 can change)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type in {"MatMul", "Gemm"} and len(node.input) > 1 and node.input[1] in weights
    ]


@known_harmless(QUANTIZE)
def quantize_blockwise_int8(
    onnx_path: Path, out_dir: Path, config: BlockwiseQuantConfig | None = None
) -> Path:
    """Weight-only block-wise quantization of MatMuls (MatMulNBits); embeddings to int8 too."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    config = config or BlockwiseQuantConfig()
    target = prepare_out(out_dir)
    tmp = tmp_path_for(target)
    try:
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(onnx_path)),
            bits=config.bits,
            block_size=config.block_size,
            is_symmetric=config.symmetric,
            accuracy_level=config.accuracy_level or None,
        )
        with _quiet_logger("onnxruntime.quantization.matmul_nbits_quantizer"):
            quantizer.process()
        quantizer.model.save_model_to_file(str(tmp))
        if config.quantize_embeddings:
            from onnxruntime.quantization import quantize_dynamic

            quantize_dynamic(tmp, tmp, op_types_to_quantize=["Gather"], per_channel=False)
    except Exception as exc:
        raise OptimizeError(f"block-wise quantization of {onnx_path} failed: {exc}") from exc
    tmp.replace(target)
    save_config(target, "blockwise_int8", config, parent=str(onnx_path))
    return target


class _quiet_logger:
    """Silence one chatty logger (the NBits quantizer logs every skipped node at INFO)."""

    def __init__(self, name: str) -> None:
        import logging

        self._logger = logging.getLogger(name)
        self._level = self._logger.level

    def __enter__(self) -> None:
        import logging

        self._logger.setLevel(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
