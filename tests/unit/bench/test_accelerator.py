"""The harness records the accelerator it ran on and runs on CUDA when onnxruntime offers it.

Tests that need an NVIDIA GPU skip with the reason (this machine has none); what runs here is the
CPU path, the choice of execution providers, and the GPU name read from a real nvidia-smi-shaped
executable put first on PATH.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from thrifty.bench.accelerator import (
    CPU,
    CUDA,
    UNKNOWN_GPU,
    cuda_missing_reason,
    describe_accelerator,
    execution_providers,
)
from thrifty.bench.harness import BenchSpec, run_benchmark
from thrifty.catalog.accelerators import CANONICAL
from thrifty.errors import BenchmarkError


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    """y = relu(x @ W) with a dynamic batch."""
    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((32, 8)).astype(np.float32), "W"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [weight],
    )
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable answering ``nvidia-smi --query-gpu=name --format=csv,noheader`` like a 2-GPU box."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text(
        '#!/bin/sh\n[ "$1" = "--query-gpu=name" ] || exit 9\nprintf "Tesla T4\\nNVIDIA A10G\\n"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return script


def test_cpu_run_records_cpu(tiny_onnx: Path) -> None:
    if cuda_missing_reason() is None:
        pytest.skip("this machine has an NVIDIA GPU: device 'auto' runs on it (see the GPU test)")
    result = run_benchmark(tiny_onnx, BenchSpec(batch_sizes=(1,), seq_lens=(None,), runs=3, warmup=1))
    hardware = result["hardware"]
    assert (hardware["accelerator"], hardware["accelerator_name"]) == ("cpu", "")
    assert hardware["execution_provider"] == CPU
    assert "execution_provider" not in result  # moved into the hardware record
    assert {"cpu_model", "vcpus"} <= set(hardware)


def test_provider_choice() -> None:
    assert execution_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert execution_providers("auto", [CPU]) == [CPU]
    assert execution_providers("cpu", [CUDA, CPU]) == [CPU]
    with pytest.raises(BenchmarkError, match="offers only CPUExecutionProvider") as info:
        execution_providers("cuda", [CPU])
    assert info.value.hint and "onnxruntime-gpu" in info.value.hint
    with pytest.raises(BenchmarkError, match="device='tpu'"):
        BenchSpec(device="tpu")


def test_cuda_asked_for_without_a_gpu_fails_clearly(tiny_onnx: Path) -> None:
    if cuda_missing_reason() is None:
        pytest.skip("this machine has an NVIDIA GPU: nothing to refuse")
    with pytest.raises(BenchmarkError, match="device 'cuda' asked for"):
        run_benchmark(tiny_onnx, BenchSpec(batch_sizes=(1,), seq_lens=(None,), runs=1, device="cuda"))


def test_gpu_name_comes_from_nvidia_smi_and_is_canonical(
    fake_nvidia_smi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert describe_accelerator(CUDA) == {
        "accelerator": "Tesla T4",
        "accelerator_name": "T4",
        "execution_provider": CUDA,
    }
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert describe_accelerator(CUDA)["accelerator_name"] == "A10G"
    assert describe_accelerator(CPU)["accelerator"] == "cpu"  # a CPU session never reads the GPU


def test_a_cuda_run_without_a_gpu_name_matches_no_offer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    recorded = describe_accelerator(CUDA)
    assert recorded["accelerator_name"] == UNKNOWN_GPU and UNKNOWN_GPU not in CANONICAL


def test_benchmark_on_the_gpu_records_its_name(tiny_onnx: Path) -> None:
    missing = cuda_missing_reason()
    if missing:
        pytest.skip(f"needs an NVIDIA GPU with onnxruntime's CUDA execution provider: {missing}")
    result = run_benchmark(tiny_onnx, BenchSpec(batch_sizes=(1, 8), seq_lens=(None,), runs=10, device="cuda"))
    hardware = result["hardware"]
    assert hardware["execution_provider"] == CUDA
    assert hardware["accelerator_name"] in CANONICAL, hardware["accelerator"]
    assert all(case["latency_ms_p50"] > 0 for case in result["cases"])
