"""Safe model ingest: detect the format, validate, record the signature, store and version it.

Formats: ONNX (onnx.checker; external data must resolve inside the model folder), PyTorch
(TorchScript, torch.export .pt2, state dict via ``torch.load(weights_only=True)``, safetensors) and
Hugging Face folders (config.json + safetensors). Unrestricted pickle is refused.

Names are imported lazily so that ``thrifty --help`` (which imports ``thrifty.ingest.commands``)
does not pay for SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thrifty.ingest.core import IngestResult, ingest_model, materialize
    from thrifty.ingest.types import SUPPORTED, ModelInfo

__all__ = ["SUPPORTED", "IngestResult", "ModelInfo", "ingest_model", "materialize"]


def __getattr__(name: str) -> Any:
    if name in ("IngestResult", "ingest_model", "materialize"):
        from thrifty.ingest import core

        return getattr(core, name)
    if name in ("SUPPORTED", "ModelInfo"):
        from thrifty.ingest import types

        return getattr(types, name)
    raise AttributeError(name)
