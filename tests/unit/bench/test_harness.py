"""The harness times a real ONNX model in a fresh child process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from thrifty.bench.harness import BenchSpec, run_benchmark
from thrifty.errors import BenchmarkError


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    """y = relu(x @ W): a dynamic-batch model built with onnx.helper."""
    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32), "W"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_harness_reports_every_case_from_a_child_process(tiny_onnx: Path) -> None:
    spec = BenchSpec(batch_sizes=(1, 4), threads=(1,), seq_lens=(None,), runs=20, warmup=2)
    result = run_benchmark(tiny_onnx, spec)
    assert [c["batch_size"] for c in result["cases"]] == [1, 4]
    for case in result["cases"]:
        assert 0 < case["latency_ms_p50"] <= case["latency_ms_p95"] <= case["latency_ms_p99"]
        assert case["throughput_rps"] > 0 and case["runs"] == 20
    assert result["load_ms"] > 0
    assert result["peak_memory_mib"] > 10  # the child's RSS: Python + onnxruntime
    assert result["file_size_bytes"] == tiny_onnx.stat().st_size
    assert {"cpu_model", "cpu_flags", "vcpus"} <= set(result["hardware"])
    assert result["runtime"] == "onnxruntime"


def test_missing_model_and_bad_spec_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="does not exist"):
        run_benchmark(tmp_path / "nope.onnx", BenchSpec())
    with pytest.raises(BenchmarkError, match="batch_sizes"):
        BenchSpec(batch_sizes=(0,))


def test_a_broken_model_fails_with_the_child_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(os.urandom(64))
    with pytest.raises(BenchmarkError, match="failed"):
        run_benchmark(bad, BenchSpec(runs=1))


def _matmul_onnx(path: Path, rows: int, cols: int) -> Path:
    weight = numpy_helper.from_array(np.ones((rows, cols), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", cols])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _own_peak_mib() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc/self/status")
def test_peak_memory_is_the_childs_own_not_the_large_parents(tiny_onnx: Path) -> None:
    # Linux keeps ru_maxrss across fork + exec: a worker started by a 1 GiB parent reported ≥ 1 GiB
    ballast = np.ones(128 * 1024 * 1024, np.float64)  # 1 GiB, touched
    assert _own_peak_mib() >= 1024
    spec = BenchSpec(batch_sizes=(1,), seq_lens=(None,), runs=3, warmup=1)
    peak = run_benchmark(tiny_onnx, spec)["peak_memory_mib"]
    del ballast
    assert 10 < peak < 512, peak  # Python + numpy + onnxruntime + a 4 kB model


def test_peak_memory_grows_with_the_model(tiny_onnx: Path, tmp_path: Path) -> None:
    """Two models, two numbers: a 64 MiB weight shows up in the child's peak."""
    spec = BenchSpec(batch_sizes=(1,), seq_lens=(None,), runs=3, warmup=1)
    small = run_benchmark(tiny_onnx, spec)["peak_memory_mib"]
    big = run_benchmark(_matmul_onnx(tmp_path / "big.onnx", 4096, 4096), spec)["peak_memory_mib"]
    assert big - small > 60, (small, big)
