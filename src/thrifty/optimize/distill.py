"""Knowledge distillation: a smaller student learns the teacher's softened outputs (and labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import OptimizeError
from thrifty.optimize._io import save_config
from thrifty.optimize.config import DistillConfig, ExportConfig
from thrifty.optimize.export import export_torch_module
from thrifty.optimize.training import fit, parameter_count, predict


def distill_classifier(
    teacher: Any,
    student: Any,
    inputs: np.ndarray,
    labels: np.ndarray | None = None,
    config: DistillConfig | None = None,
) -> Any:
    """Train ``student`` on the teacher's logits at ``temperature`` (+ labels with weight 1-alpha)."""
    import torch
    import torch.nn.functional as F

    config = config or DistillConfig()
    if len(inputs) == 0:
        raise OptimizeError("distillation needs a data set; got 0 inputs", hint="pass the training inputs")
    soft = torch.from_numpy(predict(teacher, inputs))
    temp = config.temperature
    alpha = config.alpha if labels is not None else 1.0
    targets = labels if labels is not None else soft.argmax(dim=1).numpy()

    def loss(logits: Any, y: Any, index: Any) -> Any:
        kd = F.kl_div(
            F.log_softmax(logits / temp, dim=1), F.softmax(soft[index] / temp, dim=1), reduction="batchmean"
        ) * (temp * temp)
        return alpha * kd + (1 - alpha) * F.cross_entropy(logits, y)

    return fit(
        student,
        inputs,
        np.asarray(targets),
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        loss_fn=loss,
        seed=config.seed,
    )


def distill_model(
    teacher: Any,
    student: Any,
    inputs: np.ndarray,
    out_dir: Path,
    config: DistillConfig | None = None,
    *,
    labels: np.ndarray | None = None,
) -> Path:
    """Distill, then export the student to ``out_dir/model.onnx``; returns that path."""
    import torch

    config = config or DistillConfig()
    trained = distill_classifier(teacher, student, inputs, labels, config)
    example = torch.from_numpy(inputs[:2].astype(np.float32))
    target = export_torch_module(
        trained, (example,), out_dir, ExportConfig(dynamic_sequence=False), input_names=("input",)
    )
    save_config(
        target,
        "distill",
        config,
        teacher_parameters=parameter_count(teacher),
        student_parameters=parameter_count(trained),
    )
    return target


def distill_into_pruned(
    teacher: Any,
    inputs: np.ndarray,
    out_dir: Path,
    config: DistillConfig | None = None,
    *,
    labels: np.ndarray | None = None,
    prune_config: Any = None,
) -> Path:
    """Distill the teacher into a structurally pruned copy of itself (same layers, fewer
    channels), for when the user names no student architecture."""
    import copy

    import torch

    from thrifty.optimize.prune import prune_structured

    student = copy.deepcopy(teacher)
    prune_structured(student, torch.from_numpy(inputs[:2].astype(np.float32)), prune_config)
    return distill_model(teacher, student, inputs, out_dir, config, labels=labels)
