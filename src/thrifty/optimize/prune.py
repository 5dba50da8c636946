"""Structured pruning with torch-pruning: whole channels / neurons are removed, so the exported
file and the latency shrink (``torch.nn.utils.prune`` only masks weights and changes neither).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import OptimizeError
from thrifty.optimize._io import save_config
from thrifty.optimize.config import ExportConfig, PruneConfig
from thrifty.optimize.export import export_torch_module
from thrifty.optimize.training import fit, parameter_count


def _importance(name: str) -> Any:
    import torch_pruning as tp

    if name == "random":
        return tp.importance.RandomImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if name == "l1" else 2)


def _output_layers(module: Any) -> list[Any]:
    """The last Linear layer: its outputs are the task's classes and must stay."""
    from torch import nn

    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def prune_structured(module: Any, example_input: Any, config: PruneConfig | None = None) -> dict[str, int]:
    """Remove ``config.ratio`` of the channels of every prunable layer in place."""
    import torch_pruning as tp

    config = config or PruneConfig()
    before = parameter_count(module)
    try:
        pruner = tp.pruner.MetaPruner(
            module.eval(),
            example_input,
            importance=_importance(config.importance),
            pruning_ratio=config.ratio,
            ignored_layers=_output_layers(module),
        )
        pruner.step()
    except Exception as exc:
        raise OptimizeError(
            f"structured pruning of {type(module).__name__} failed: {exc}",
            hint="layers torch-pruning cannot trace must be listed as ignored, or skip 'prune'",
        ) from exc
    after = parameter_count(module)
    if after >= before:
        raise OptimizeError(f"pruning removed nothing from {type(module).__name__}", hint="raise the ratio")
    return {"parameters_before": before, "parameters_after": after}


def prune_model(
    module: Any,
    example_input: Any,
    out_dir: Path,
    config: PruneConfig | None = None,
    *,
    train_data: tuple[np.ndarray, np.ndarray] | None = None,
    export_config: ExportConfig | None = None,
) -> Path:
    """Prune, fine-tune briefly when ``train_data`` (inputs, labels) is given, export to ONNX."""
    config = config or PruneConfig()
    counts = prune_structured(module, example_input, config)
    finetuned = train_data is not None and config.finetune_epochs > 0
    if train_data is not None and finetuned:
        fit(
            module,
            *train_data,
            epochs=config.finetune_epochs,
            learning_rate=config.learning_rate,
            batch_size=config.batch_size,
        )
    export_cfg = export_config or ExportConfig(dynamic_sequence=False)
    target = export_torch_module(module, (example_input,), out_dir, export_cfg, input_names=("input",))
    save_config(target, "prune", config, finetuned=finetuned, **counts)
    return target
