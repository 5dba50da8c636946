"""The known-harmless messages of onnxruntime / torch.onnx are silenced where they arise, and only those.

The first `make run` printed 28 "Please consider to run pre-processing before quantization"
warnings, torchvision warnings from torch.onnx's exporter and "failed in shape inference".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from thrifty.optimize._quiet import EXPORT, GRAPH, GRAPH_STDOUT, QUANTIZE, known_harmless
from thrifty.optimize.quantize import (
    count_ops,
    quantize_blockwise_int8,
    quantize_dynamic_int8,
    quantize_static_int8,
)

NOISE = ("pre-processing", "torchvision", "shape inference")


@pytest.fixture
def mlp(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.standard_normal((64, 16)).astype(np.float32), "W2"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "W2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        weights,
    )
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_quantization_prints_none_of_the_known_warnings(
    mlp: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    feeds = [{"x": np.random.default_rng(i).standard_normal((1, 64)).astype(np.float32)} for i in range(4)]
    with caplog.at_level(logging.INFO):
        made = [
            quantize_dynamic_int8(mlp, tmp_path / "dynamic"),
            quantize_static_int8(mlp, tmp_path / "static", feeds),
            quantize_blockwise_int8(mlp, tmp_path / "blockwise"),
        ]
    # pytest holds the log records (a user's terminal got them on stderr); prints and C++ logs
    # land on the file descriptors
    out, err = capfd.readouterr()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] + [out, err]
    assert not [line for line in said for n in NOISE if n in line], said
    assert count_ops(made[0])["MatMulInteger"] == 2  # the calls did their work


def test_only_the_named_messages_and_only_during_the_call(caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    with caplog.at_level(logging.WARNING), known_harmless(QUANTIZE):
        root.warning("Please consider to run pre-processing before quantization. Refer to ...")
        root.warning("a real problem stays visible")
    root.warning("Please consider pre-processing before quantization. See ...")  # after: not filtered
    assert [r.getMessage()[:28] for r in caplog.records] == [
        "a real problem stays visible",
        "Please consider pre-processi",
    ]
    assert root.filters == []


def test_exporter_and_optimizer_noise_is_dropped_other_output_passes(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    fusion = logging.getLogger("fusion_skiplayernorm")  # the name onnxruntime.transformers logs under
    with caplog.at_level(logging.WARNING), known_harmless({**EXPORT, **GRAPH}, stdout=GRAPH_STDOUT):
        registration.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
        fusion.warning("symbolic shape inference disabled or failed.")
        print("failed in shape inference", TypeError)  # onnxruntime prints this one on stdout
        print("fused 6 SkipLayerNormalization")
        fusion.warning("a fusion warning we did not expect")
    assert capsys.readouterr().out == "fused 6 SkipLayerNormalization\n"
    assert [r.getMessage() for r in caplog.records] == ["a fusion warning we did not expect"]
