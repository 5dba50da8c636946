"""What ingest learns about a model before it is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: formats thrifty accepts, with what to send
SUPPORTED = {
    "onnx": "an .onnx file (external data files inside its folder)",
    "torchscript": "a TorchScript archive (torch.jit.save)",
    "torch_export": "a torch.export archive (.pt2, torch.export.save)",
    "state_dict": "a state dict saved with torch.save(model.state_dict())",
    "safetensors": "a .safetensors weights file",
    "huggingface": "a Hugging Face folder (config.json + *.safetensors)",
    "sklearn": "a scikit-learn model saved with skops (skops.io.dump)",
    "xgboost": "an XGBoost model in its JSON or UBJ format (Booster.save_model)",
    "lightgbm": "a LightGBM text model (Booster.save_model)",
}


@dataclass
class ModelInfo:
    format: str
    parameter_count: int | None = None
    opset: int | None = None
    task: str | None = None
    signature: dict[str, Any] = field(default_factory=lambda: {"inputs": [], "outputs": []})
    details: dict[str, Any] = field(default_factory=dict)


def supported_list() -> str:
    return "; ".join(SUPPORTED.values())
