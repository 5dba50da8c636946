"""int8 quantization with ONNX Runtime: dynamic (per-channel by default), block-wise, static QDQ, and
dynamic int8 after outlier smoothing (``quantize_smooth_int8``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import OptimizeError
from thrifty.optimize._io import prepare_out, save_config, tmp_path_for
from thrifty.optimize._quiet import QUANTIZE, known_harmless
from thrifty.optimize.config import (
    BlockwiseQuantConfig,
    DynamicQuantConfig,
    SmoothQuantConfig,
    StaticQuantConfig,
)


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


# --- smooth int8: outlier tokens in fp32, SmoothQuant channel scales, then dynamic int8 -------------

_SPLIT_CONSTANTS = (
    "thrifty_outlier_start",
    "thrifty_outlier_end",
    "thrifty_outlier_axis",
    "thrifty_outlier_max",
)


def smooth_targets(model: Any, exclude: Iterable[str] = ()) -> dict[str, list[Any]]:
    """Weight MatMuls (2-D float initializer as B) grouped by their activation input, graph order.

    Unnamed MatMuls get a name (the rewrite and ``nodes_to_exclude`` address nodes by name)."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    skip = set(exclude)
    groups: dict[str, list[Any]] = {}
    for index, node in enumerate(model.graph.node):
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if weight is None or len(weight.dims) != 2 or weight.data_type != TensorProto.FLOAT:
            continue
        node.name = node.name or f"thrifty_matmul_{index}"
        if node.name not in skip:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def split_outlier_tokens(model: Any, groups: dict[str, list[Any]], tokens: int) -> list[str]:
    """Route the first ``tokens`` rows (axis -2) of each group's input through an fp32 MatMul.

    Exact in fp32: Y = Concat(X[..., :t, :] @ W, X[..., t:, :] @ W). Returns the fp32 nodes' names
    (dynamic quantization must skip them); the int8 MatMuls now read the sliced ``_rest`` input."""
    from onnx import helper, numpy_helper

    graph = model.graph
    for name, value in zip(_SPLIT_CONSTANTS, (0, tokens, -2, 2**62), strict=True):
        graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), name))
    start, end, axis, big = _SPLIT_CONSTANTS
    nodes, fp32_names = list(graph.node), []
    for x, consumers in groups.items():
        first = nodes.index(consumers[0])
        nodes[first:first] = [
            helper.make_node("Slice", [x, start, end, axis], [f"{x}_outlier"], name=f"{x}_slice_outlier"),
            helper.make_node("Slice", [x, end, big, axis], [f"{x}_rest"], name=f"{x}_slice_rest"),
        ]
        for node in consumers:
            y = node.output[0]
            fp32 = helper.make_node(
                "MatMul", [f"{x}_outlier", node.input[1]], [f"{y}_outlier"], name=f"{node.name}_outlier_fp32"
            )
            concat = helper.make_node(
                "Concat", [f"{y}_outlier", f"{y}_rest"], [y], name=f"{node.name}_concat", axis=-2
            )
            node.input[0], node.output[0] = f"{x}_rest", f"{y}_rest"
            at = nodes.index(node)
            nodes[at : at + 1] = [fp32, node, concat]
            fp32_names.append(fp32.name)
    graph.ClearField("node")
    graph.node.extend(nodes)
    return fp32_names


def activation_stats(
    model: Any, inputs: list[str], feeds: list[dict[str, np.ndarray]], skip_rows: int
) -> dict[str, tuple[int, np.ndarray]]:
    """(rank, per-channel max |x|) of each tensor in ``inputs`` over ``feeds``; the maxima leave out
    the first ``skip_rows`` rows (axis -2) of rank ≥ 3 tensors, the outlier tokens kept in fp32."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in inputs:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    stats: dict[str, tuple[int, np.ndarray]] = {}
    for feed in feeds:
        outputs = session.run(inputs, {k: v for k, v in feed.items() if k in wanted})
        for name, out in zip(inputs, outputs, strict=True):
            rows = out[..., skip_rows:, :] if out.ndim >= 3 else out
            flat = np.abs(rows.reshape(-1, out.shape[-1])).max(axis=0, initial=0.0)
            stats[name] = (out.ndim, np.maximum(stats[name][1], flat) if name in stats else flat)
    return stats


def smooth_channels(
    model: Any, groups: dict[str, list[Any]], maxima: dict[str, np.ndarray], alpha: float
) -> int:
    """SmoothQuant: x / s before each group's MatMuls (one Mul), W * s on their rows; exact in fp32.

    Returns how many inputs were smoothed (a group whose weight rows do not match its channels is
    left as it is)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, done = list(graph.node), 0
    live = {node.name: node for node in nodes}  # a rewrite before this one rebuilt graph.node
    for x, stale in groups.items():
        consumers = [live[node.name] for node in stale]
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in consumers]
        if x not in maxima or any(w.shape[0] != len(maxima[x]) for w in weights):
            continue
        w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        scale = np.maximum(maxima[x], 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha)
        scale = np.clip(scale, 1e-2, 1e2).astype(np.float32)
        read = consumers[0].input[0]
        graph.initializer.append(
            numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{read}_smooth_inv")
        )
        nodes.insert(
            nodes.index(consumers[0]),
            helper.make_node("Mul", [read, f"{read}_smooth_inv"], [f"{read}_smooth"], name=f"{read}_smooth"),
        )
        for node, weight in zip(consumers, weights, strict=True):
            name = f"{node.name}_smoothed_weight"
            graph.initializer.append(
                numpy_helper.from_array((weight * scale[:, None]).astype(np.float32), name)
            )
            node.input[0], node.input[1] = f"{read}_smooth", name
        done += 1
    graph.ClearField("node")
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)
    return done


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend(keep)


def _rewrite_for_smooth(
    onnx_path: Path, config: SmoothQuantConfig, feeds: list[dict[str, np.ndarray]]
) -> tuple[Any, list[str], dict[str, int]]:
    """The fp32 graph with outliers taken out, the fp32 row nodes, and counts for the saved config.

    Only inputs of rank ≥ 3 ([batch, tokens, channels]) have outlier tokens split off."""
    import onnx

    model = onnx.load(str(onnx_path))
    groups = smooth_targets(model, config.nodes_to_exclude)
    if not groups:
        raise OptimizeError(f"{onnx_path} has no weight MatMul to quantize", hint="use dynamic_int8 instead")
    stats = activation_stats(model, list(groups), feeds, config.outlier_tokens)
    token_groups = {x: g for x, g in groups.items() if x in stats and stats[x][0] >= 3}
    fp32_rows = (
        split_outlier_tokens(model, token_groups, config.outlier_tokens) if config.outlier_tokens else []
    )
    smoothed = 0
    if config.alpha > 0:
        maxima = {x: stat[1] for x, stat in stats.items()}
        smoothed = smooth_channels(model, groups, maxima, config.alpha)
    counts = {
        "int8_matmuls": sum(len(g) for g in groups.values()),
        "outlier_row_matmuls": len(fp32_rows),
        "smoothed_inputs": smoothed,
    }
    return model, fp32_rows, counts


@known_harmless(QUANTIZE)
def quantize_smooth_int8(
    onnx_path: Path,
    out_dir: Path,
    calibration_feeds: Iterable[dict[str, np.ndarray]],
    config: SmoothQuantConfig | None = None,
) -> Path:
    """Dynamic int8 after taking activation outliers out (see ``SmoothQuantConfig``); returns the file."""
    from onnxruntime.quantization import quantize_dynamic

    config = config or SmoothQuantConfig()
    feeds = [dict(f) for _, f in zip(range(config.calibration_samples), calibration_feeds, strict=False)]
    if not feeds:
        raise OptimizeError(
            f"no calibration samples for smooth int8 of {onnx_path}",
            hint="pass calibration data (or an eval set) with at least one input",
        )
    target = prepare_out(out_dir)
    tmp, rewritten = tmp_path_for(target), target.with_name(f".{target.stem}.smoothed.onnx")
    try:
        model, fp32_rows, counts = _rewrite_for_smooth(onnx_path, config, feeds)
        model.SerializeToString()  # fails early (> 2 GB) before anything is written
        import onnx

        onnx.save(model, str(rewritten))
        quantize_dynamic(
            rewritten,
            tmp,
            op_types_to_quantize=["MatMul", "Gather"] if config.quantize_embeddings else ["MatMul"],
            per_channel=config.per_channel,
            weight_type=_quant_type("qint8"),
            nodes_to_exclude=[*fp32_rows, *config.nodes_to_exclude],
            extra_options={"MatMulConstBOnly": True},
        )
    except OptimizeError:
        raise
    except Exception as exc:
        raise OptimizeError(f"smooth int8 quantization of {onnx_path} failed: {exc}") from exc
    finally:
        rewritten.unlink(missing_ok=True)
    tmp.replace(target)
    save_config(
        target, "smooth_int8", config, parent=str(onnx_path), calibration_samples_used=len(feeds), **counts
    )
    return target
