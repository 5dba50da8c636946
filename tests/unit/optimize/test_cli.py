"""`thrifty optimize / bench / variants` on a small ONNX classifier (real CLI, real registry)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def _mlp(path: Path) -> Path:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.standard_normal((32, 10)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "W1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "W2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_optimize_bench_and_variants_commands(thrifty_home: Path, tmp_path: Path) -> None:
    from thrifty.cli import app

    runner = CliRunner()
    model = _mlp(tmp_path / "mlp.onnx")
    assert runner.invoke(app, ["ingest", str(model), "--name", "mlp"]).exit_code == 0
    common = ["--batch-sizes", "1,4", "--runs", "3", "--json"]
    result = runner.invoke(app, ["optimize", "mlp", "--techniques", "dynamic_int8,fp16", *common])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["variant"] for r in rows] == ["onnx-fp32", "onnx-graph", "int8-dynamic", "fp16"]
    assert all(r["status"] in {"accepted", "rejected"} and r["latency_ms_p50"] for r in rows)
    assert rows[0]["fidelity"]["top1_agreement"] == 1.0

    bench = runner.invoke(app, ["bench", "mlp", "--batch-sizes", "2", "--runs", "3", "--json"])
    assert bench.exit_code == 0, bench.output
    assert len(json.loads(bench.output)) == 4

    listed = runner.invoke(app, ["variants", "mlp", "--json"])
    assert [r["id"] for r in json.loads(listed.output)] == [r["id"] for r in rows]


def test_bad_options_fail_with_a_fix(thrifty_home: Path) -> None:
    import sys

    from thrifty.cli import main

    argv = sys.argv
    sys.argv = ["thrifty", "optimize", "nope", "--techniques", "int3"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = argv
    assert exit_info.value.code == 1
