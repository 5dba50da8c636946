"""A real CNN trained here on scikit-learn's digits (real labels): distillation, structured
pruning, and int8 dynamic vs static QDQ judged by accuracy."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from thrifty.bench.evaluation import array_eval_set
from thrifty.bench.fidelity import run_onnx
from thrifty.optimize.config import DistillConfig, DynamicQuantConfig, ExportConfig, PruneConfig, Tolerance
from thrifty.optimize.distill import distill_model
from thrifty.optimize.export import export_torch_module
from thrifty.optimize.prune import prune_model
from thrifty.optimize.quantize import count_ops, quantize_dynamic_int8, quantize_static_int8
from thrifty.optimize.training import accuracy, conv_classifier, parameter_count

pytestmark = pytest.mark.slow


def _onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    logits = run_onnx(path, [{"input": x}])
    return float((logits.argmax(axis=1) == y).mean())


@pytest.fixture(scope="module")
def teacher_onnx(digits_teacher: Any, digits: dict[str, np.ndarray], tmp_path_factory: Any) -> Path:
    example = torch.from_numpy(digits["x_test"][:2])
    return export_torch_module(
        digits_teacher,
        (example,),
        tmp_path_factory.mktemp("teacher"),
        ExportConfig(dynamic_sequence=False),
        input_names=("input",),
    )


def test_distilled_student_is_smaller_and_nearly_as_accurate(
    digits_teacher: Any, digits: dict[str, np.ndarray], teacher_onnx: Path, tmp_path: Path
) -> None:
    student = conv_classifier(width=8)
    path = distill_model(
        digits_teacher,
        student,
        digits["x_train"],
        tmp_path,
        DistillConfig(epochs=25, temperature=4.0, alpha=0.7),
        labels=digits["y_train"],
    )
    teacher_acc = _onnx_accuracy(teacher_onnx, digits["x_test"], digits["y_test"])
    student_acc = _onnx_accuracy(path, digits["x_test"], digits["y_test"])
    size_ratio = path.stat().st_size / teacher_onnx.stat().st_size
    print(
        f"\nteacher: {parameter_count(digits_teacher)} params, {teacher_onnx.stat().st_size / 1e3:.0f} kB, "
        f"accuracy {teacher_acc:.3f}\nstudent: {parameter_count(student)} params, "
        f"{path.stat().st_size / 1e3:.0f} kB, accuracy {student_acc:.3f} (size {size_ratio:.2f}×)"
    )
    assert teacher_acc > 0.95
    assert size_ratio < 0.1
    assert student_acc > teacher_acc - 0.04
    saved = json.loads((tmp_path / "thrifty_config.json").read_text())
    assert saved["student_parameters"] < saved["teacher_parameters"] / 10


def test_structured_pruning_removes_channels_and_fine_tunes(
    digits_teacher: Any, digits: dict[str, np.ndarray], teacher_onnx: Path, tmp_path: Path
) -> None:
    model = copy.deepcopy(digits_teacher)
    before = parameter_count(model)
    example = torch.from_numpy(digits["x_test"][:2])
    path = prune_model(
        model,
        example,
        tmp_path,
        PruneConfig(ratio=0.5, finetune_epochs=3),
        train_data=(digits["x_train"], digits["y_train"]),
    )
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32]  # really removed, not masked
    assert parameter_count(model) < 0.35 * before
    assert path.stat().st_size < 0.4 * teacher_onnx.stat().st_size
    teacher_acc = _onnx_accuracy(teacher_onnx, digits["x_test"], digits["y_test"])
    assert _onnx_accuracy(path, digits["x_test"], digits["y_test"]) > teacher_acc - 0.03
    assert accuracy(model, digits["x_test"], digits["y_test"]) > 0.9
    saved = json.loads((tmp_path / "thrifty_config.json").read_text())
    assert saved["finetuned"] is True and saved["parameters_after"] < saved["parameters_before"]


def test_dynamic_and_static_int8_on_a_cnn_are_judged_by_accuracy(
    teacher_onnx: Path, digits: dict[str, np.ndarray], tmp_path: Path
) -> None:
    evals = array_eval_set(teacher_onnx, {"input": digits["x_test"]}, labels=digits["y_test"])
    dynamic = quantize_dynamic_int8(teacher_onnx, tmp_path / "dyn", DynamicQuantConfig())
    static = quantize_static_int8(teacher_onnx, tmp_path / "static", evals.calibration_feeds())
    assert count_ops(static)["QuantizeLinear"] >= 3 and count_ops(static)["DequantizeLinear"] >= 3
    assert count_ops(dynamic).get("ConvInteger", 0) + count_ops(dynamic).get("MatMulInteger", 0) >= 1
    for path in (dynamic, static):
        verdict = evals.judge(path, Tolerance(max_accuracy_drop=0.02))
        assert verdict["reference_accuracy"] > 0.95
        assert verdict["accepted"], verdict["rejection_reason"]
