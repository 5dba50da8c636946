"""The original model of a sentence-transformers folder as one PyTorch module.

Its outputs are the reference a variant's fidelity is measured against (``evaluation``), the
original whose latency the harness times (``_worker``), and the module the optimize step exports
to ONNX (``optimize.export``) — one definition, so what is exported is what is judged against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thrifty.bench.evalsets import TEXT_INPUTS


def pooling_mode(folder: Path, pooling: str = "mean", normalize: bool = True) -> tuple[str, bool]:
    """(pooling, normalize) from the folder's sentence-transformers modules, else the given ones."""
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return pooling, normalize
    modules = json.loads(modules_file.read_text())
    types = [m.get("type", "") for m in modules]
    normalize = any(t.endswith("Normalize") for t in types)
    for m in modules:
        if m.get("type", "").endswith("Pooling"):
            pool_cfg = json.loads((folder / m["path"] / "config.json").read_text())
            pooling = "cls" if pool_cfg.get("pooling_mode_cls_token") else "mean"
    return pooling, normalize


def sentence_embedding_module(folder: Path, pooling: str = "mean", normalize: bool = True) -> Any:
    """The folder's transformer + pooling + normalization as one ``nn.Module``.

    ``pooling`` and ``normalize`` apply only when the folder does not say (no ``modules.json``).
    The module's inputs are ``TEXT_INPUTS``, in that order.
    """
    import torch
    from transformers import AutoModel

    pooling, normalize = pooling_mode(folder, pooling, normalize)
    encoder = AutoModel.from_pretrained(str(folder)).eval()

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1) if normalize else pooled

    return SentenceEmbedding().eval()


__all__ = ["TEXT_INPUTS", "pooling_mode", "sentence_embedding_module"]
