"""The smoke test compares a real inference with the expected output, within a tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.serving.conftest import mlp_reference
from thrifty.errors import ServingError
from thrifty.serving.app import BackgroundServer
from thrifty.serving.server import InferenceServer
from thrifty.serving.smoke import smoke_test


def _served(mlp_path: Path) -> BackgroundServer:
    def make() -> object:
        server = InferenceServer()
        server.load("mlp", mlp_path)
        return server.handle

    return BackgroundServer(make)  # type: ignore[arg-type]


def test_smoke_test_passes_within_tolerance_and_fails_outside(mlp_path: Path, thrifty_home: Path) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    inputs = [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.ravel().tolist()}]
    expected = mlp_reference(mlp_path, x)
    with _served(mlp_path) as url:
        result = smoke_test("mlp", inputs, {"y": expected.tolist()}, base_url=url)
        assert result["outputs_checked"] == ["y"] and result["max_abs_error"] < 1e-5
        with pytest.raises(ServingError, match=r"output 'y' differs .* \(max abs error 0\.5"):
            smoke_test("mlp", inputs, {"y": (expected + 0.5).tolist()}, base_url=url)
        with pytest.raises(ServingError, match="no output 'z'"):
            smoke_test("mlp", inputs, {"z": [1.0]}, base_url=url)
        with pytest.raises(ServingError, match="HTTP 400"):
            smoke_test("mlp", [{**inputs[0], "datatype": "INT64"}], {"y": [0.0]}, base_url=url)
