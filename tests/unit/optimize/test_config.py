"""Configs reject bad combinations with a message naming them; presets follow the CPU's flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrifty.errors import ConfigError
from thrifty.optimize._io import load_config, save_config
from thrifty.optimize.config import (
    BlockwiseQuantConfig,
    DistillConfig,
    DynamicQuantConfig,
    ExportConfig,
    GraphOptConfig,
    PruneConfig,
    StaticQuantConfig,
    Tolerance,
    config_to_json,
    for_cpu,
    for_gpu,
)


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: DynamicQuantConfig(weight_type="quint8", per_channel=True, isa="avx512_vnni"), "quint8"),
        (lambda: DynamicQuantConfig(isa="arm64", reduce_range=True), "reduce_range=True with isa='arm64'"),
        (lambda: DynamicQuantConfig(op_types=()), "op_types is empty"),
        (lambda: StaticQuantConfig(quant_format="qoperator", activation_type="qint8"), "S8S8"),
        (lambda: StaticQuantConfig(calibration_method="magic"), "calibration_method='magic'"),
        (lambda: BlockwiseQuantConfig(bits=8, accuracy_level=2), "bits=8 with accuracy_level=2"),
        (lambda: BlockwiseQuantConfig(block_size=48), "block_size=48"),
        (lambda: GraphOptConfig(fp16=True), "fp16=True with for_gpu=False"),
        (lambda: ExportConfig(pooling="none", normalize=True), "pooling='none' with normalize=True"),
        (lambda: PruneConfig(ratio=0.99), "ratio=0.99"),
        (lambda: DistillConfig(temperature=0), "temperature=0"),
        (lambda: Tolerance(min_agreement=1.5), "min_agreement=1.5"),
    ],
)
def test_bad_combinations_are_named(make: object, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()  # type: ignore[operator]
    assert named in info.value.message
    assert info.value.hint


@pytest.mark.parametrize(
    ("flags", "machine", "isa", "reduce_range"),
    [
        (["avx2"], "x86_64", "avx2", True),
        (["avx2", "avx512f", "avx512bw"], "x86_64", "avx512", False),
        (["avx2", "avx512f", "avx512bw", "avx512_vnni"], "x86_64", "avx512_vnni", False),
        (["asimd", "asimddp"], "aarch64", "arm64", False),
    ],
)
def test_for_cpu_follows_the_flags(flags: list[str], machine: str, isa: str, reduce_range: bool) -> None:
    preset = for_cpu(flags, machine)
    assert preset.name == f"cpu-{isa}"
    assert preset.dynamic is not None and preset.dynamic.isa == isa
    # avx2 without VNNI saturates u8×s8 products, so its preset reduces the weight range
    assert preset.dynamic.reduce_range is reduce_range
    assert preset.fp16 is not None and preset.fp16.target == "cpu"
    assert "only the file size halves" in preset.fp16.note


def test_for_cpu_refuses_a_cpu_without_simd() -> None:
    with pytest.raises(ConfigError, match="neither avx2 nor arm64"):
        for_cpu(["sse2"], "x86_64")


def test_for_gpu_has_no_int8_and_uses_fp16() -> None:
    preset = for_gpu()
    assert preset.dynamic is None and preset.static is None
    assert preset.fp16 is not None and preset.fp16.target == "gpu"
    assert preset.graph.for_gpu


def test_config_saved_next_to_the_model(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    save_config(model, "dynamic_int8", DynamicQuantConfig(nodes_to_exclude=("a",)), parent="p")
    saved = json.loads((tmp_path / "thrifty_config.json").read_text())
    assert saved["technique"] == "dynamic_int8"
    assert saved["config"]["type"] == "DynamicQuantConfig"
    assert saved["config"]["nodes_to_exclude"] == ["a"]
    assert load_config(model) == saved
    assert config_to_json(Tolerance())["min_cosine"] == 0.99
